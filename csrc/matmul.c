/*
 * matmul.c — the three products of a linear layer y = x W^T (placeholder: plain loops;
 * the tuned SIMD version replaces this file).
 */
#include "kernels.h"

void matmul_forward(float *restrict out, const float *restrict inp,
                    const float *restrict weight, int N, int C, int OC) {
    #pragma omp parallel for
    for (int n = 0; n < N; n++) {
        for (int o = 0; o < OC; o++) {
            float acc = 0.0f;
            for (int c = 0; c < C; c++) acc += inp[(long)n * C + c] * weight[(long)o * C + c];
            out[(long)n * OC + o] = acc;
        }
    }
}

void matmul_backward_input(float *restrict dinp, const float *restrict dout,
                           const float *restrict weight, int N, int C, int OC) {
    #pragma omp parallel for
    for (int n = 0; n < N; n++) {
        for (int c = 0; c < C; c++) dinp[(long)n * C + c] = 0.0f;
        for (int o = 0; o < OC; o++) {
            float g = dout[(long)n * OC + o];
            for (int c = 0; c < C; c++) dinp[(long)n * C + c] += g * weight[(long)o * C + c];
        }
    }
}

void matmul_backward_weight(float *restrict dweight, const float *restrict dout,
                            const float *restrict inp, int N, int C, int OC) {
    #pragma omp parallel for
    for (int o = 0; o < OC; o++) {
        for (int n = 0; n < N; n++) {
            float g = dout[(long)n * OC + o];
            for (int c = 0; c < C; c++) dweight[(long)o * C + c] += g * inp[(long)n * C + c];
        }
    }
}
