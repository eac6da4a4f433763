"""Language ID (minillm/internet/langid.py): naive Bayes over character 1-4-grams.

The sentences below are not in data/langid/ (the training text), so these are held-out
checks. Run: python -m pytest tests/internet/test_langid.py
"""
import numpy as np
import pytest

from minillm.internet import langid

HELD_OUT = {
    "en": ["The weather was cold and grey when the ship finally left the harbour, and nobody on "
           "board knew how long the journey would last.",
           "Please remember to switch off the lights and lock the back door before you go to bed."],
    "fr": ["Le temps était froid et gris quand le navire a enfin quitté le port, et personne à "
           "bord ne savait combien de temps durerait le voyage.",
           "N'oubliez pas d'éteindre les lumières et de fermer la porte de derrière avant d'aller dormir."],
    "de": ["Das Wetter war kalt und grau, als das Schiff endlich den Hafen verließ, und niemand an "
           "Bord wusste, wie lange die Reise dauern würde.",
           "Denk bitte daran, das Licht auszuschalten und die Hintertür abzuschließen, bevor du schlafen gehst."],
    "es": ["El tiempo era frío y gris cuando el barco por fin salió del puerto, y nadie a bordo "
           "sabía cuánto duraría el viaje.",
           "Acuérdate de apagar las luces y de cerrar la puerta de atrás antes de irte a dormir."],
}
# Other languages: some have a paragraph or a few of training text (sv, pl, fi, id, tr, hu,
# vi, ru), some none (et, lv, sw, sk); zh is decided by its script.
OTHER = {
    "sv": "Vädret var kallt och grått när fartyget äntligen lämnade hamnen, och ingen ombord visste hur länge resan skulle vara.",
    "pl": "Pogoda była zimna i szara, kiedy statek w końcu opuścił port, i nikt na pokładzie nie wiedział, jak długo potrwa podróż.",
    "fi": "Sää oli kylmä ja harmaa, kun laiva vihdoin lähti satamasta, eikä kukaan laivalla tiennyt, kuinka kauan matka kestäisi.",
    "id": "Cuaca dingin dan kelabu ketika kapal akhirnya meninggalkan pelabuhan, dan tidak ada seorang pun yang tahu berapa lama perjalanan itu.",
    "tr": "Gemi sonunda limandan ayrıldığında hava soğuk ve griydi ve gemideki hiç kimse yolculuğun ne kadar süreceğini bilmiyordu.",
    "hu": "Az időjárás hideg és szürke volt, amikor a hajó végre elhagyta a kikötőt, és a fedélzeten senki sem tudta, meddig tart az utazás.",
    "et": "Ilm oli külm ja hall, kui laev lõpuks sadamast lahkus, ja keegi pardal ei teadnud, kui kaua reis kestab.",
    "lv": "Laiks bija auksts un pelēks, kad kuģis beidzot atstāja ostu, un neviens uz klāja nezināja, cik ilgi ceļojums ilgs.",
    "sw": "Hali ya hewa ilikuwa baridi na ya kijivu meli ilipoondoka bandarini, na hakuna aliyejua safari ingechukua muda gani.",
    "vi": "Thời tiết lạnh và xám khi con tàu cuối cùng rời cảng, và không ai trên tàu biết chuyến đi sẽ kéo dài bao lâu.",
    "sk": "Počasie bolo chladné a sivé, keď loď konečne opustila prístav, a nikto na palube nevedel, ako dlho bude cesta trvať.",
    "ru": "Погода была холодной и серой, когда корабль наконец покинул гавань.",
    "zh": "当船终于离开港口时，天气寒冷而阴沉，船上没有人知道旅程会持续多久。",
}


@pytest.mark.parametrize("lang", sorted(HELD_OUT))
def test_held_out_sentences(lang):
    for text in HELD_OUT[lang]:
        guess = langid.identify(text)
        assert guess.lang == lang and guess.best == lang, (text, guess)
        assert guess.confidence >= 0.9


@pytest.mark.parametrize("code", sorted(OTHER))
def test_other_languages_are_never_called_en_fr_de_es(code):
    guess = langid.identify(OTHER[code])
    assert guess.lang in ("other", code), guess       # "other", or its own trained code
    assert guess.lang == "other" or guess.confidence >= langid.MIN_CONFIDENCE


def test_confidence_grows_with_evidence():
    short = langid.identify("Muchas gracias")
    long = langid.identify(HELD_OUT["es"][0])
    assert short.lang == "es" and long.lang == "es"
    assert short.confidence < long.confidence
    assert langid.identify("").lang == "other"
    assert langid.identify("12345 !!! ---").lang == "other"


def test_names_and_numbers_do_not_confuse_english():
    text = ("Varkoth Delemir was born in Ostrava Minor in 1873. He founded the Kelmar Institute "
            "and married Ilsa Trovenne, who wrote three books about the coast.")
    assert langid.identify(text).lang == "en"


def test_train_a_tiny_model():
    model = langid.train({"a": "aaa aab aba " * 20, "b": "bbb bba bab " * 20})
    assert model.langs == ("a", "b") and model.logp.shape == (langid._ROWS, 2)
    assert np.all(model.logp[model.seen.any(1)] < 0) and np.all(model.logp[~model.seen.any(1)] == 0)
    loglik, coverage = langid.scores(langid.normalize("aab aaa"), model)
    assert loglik[0] > loglik[1] and coverage[0] > coverage[1]
    # for each n-gram order, each language's probabilities sum to 1 (a mixture of two
    # distributions that do) over the rows some language saw
    for n in langid.ORDERS:
        block = slice(langid._OFFSET[n], langid._OFFSET[n] + langid.BUCKETS[n])
        p = np.exp(model.logp[block].astype(np.float64)) * model.seen[block].any(1, keepdims=True)
        np.testing.assert_allclose(p.sum(0), 1.0, rtol=1e-5)
    # an n-gram a language never saw costs every such language the same
    three = langid.train({"a": "aaa aab " * 20, "b": "bbb bba " * 20, "c": "ccc cab " * 20})
    row = langid.ngram_rows(" aaa ")[-1]         # the last 4-gram: "aaa "
    assert three.seen[row].tolist() == [True, False, False]
    assert three.logp[row, 1] == three.logp[row, 2] < three.logp[row, 0]


def test_normalize_and_ngram_rows():
    assert langid.normalize("Hello, World! 42") == " hello world "
    rows = langid.ngram_rows(" ab ")               # 4 + 3 + 2 + 1 n-grams
    assert len(rows) == 10
    assert rows[0] == rows[3] and len(set(rows.tolist())) == 9      # " " twice
    for n, lo in zip(langid.ORDERS, (0, 4, 7, 9)):                  # each order in its block
        assert langid._OFFSET[n] <= rows[lo] < langid._OFFSET[n] + langid.BUCKETS[n]
    assert langid.script_shares(langid.normalize("Ça va? Привет")) == {"latin": 4 / 10, "cyrillic": 6 / 10}
    assert langid.script_shares(" ") == {}
    # Han and kana count twice; kana among Han characters is Japanese
    assert langid.main_script(langid.script_shares(langid.normalize("東京は雨です"))) == ("kana", 1.0)
    assert langid.main_script(langid.script_shares(langid.normalize("北京下雨 ok"))) == ("han", 0.8)


# Held out from data/langid/ too: the script decides, then the n-grams among its languages.
BY_SCRIPT = {
    "nl": "Het weer was koud en grijs toen het schip eindelijk de haven verliet, en niemand aan boord wist hoe lang de reis zou duren.",
    "vi": OTHER["vi"], "hu": OTHER["hu"],
    "ru": "Погода была холодной и серой, когда корабль наконец покинул гавань, и никто на борту не знал, сколько продлится путешествие.",
    "uk": "Погода була холодною і сірою, коли корабель нарешті покинув гавань, і ніхто не знав, скільки триватиме подорож.",
    "bg": "Времето беше студено и сиво, когато корабът най-накрая напусна пристанището, и никой не знаеше колко ще продължи пътуването.",
    "ar": "كان الطقس باردا ورماديا عندما غادرت السفينة الميناء أخيرا، ولم يكن أحد يعرف كم ستستغرق الرحلة.",
    "fa": "هوا سرد و خاکستری بود وقتی کشتی سرانجام بندر را ترک کرد و هیچ‌کس نمی‌دانست سفر چقدر طول می‌کشد.",
    "zh": OTHER["zh"],
    "ja": "船がついに港を出たとき、天気は寒くて灰色で、旅がどれくらい続くのか誰も知りませんでした。",
    "ko": "배가 마침내 항구를 떠났을 때 날씨는 춥고 흐렸고, 아무도 여행이 얼마나 걸릴지 몰랐다.",
    "el": "Ο καιρός ήταν κρύος και γκρίζος όταν το πλοίο έφυγε τελικά από το λιμάνι.",
    "he": "מזג האוויר היה קר ואפור כשהספינה עזבה סוף סוף את הנמל.",
    "th": "อากาศหนาวและมืดครึ้มเมื่อเรือออกจากท่าในที่สุด",
    "hi": "जब जहाज़ आखिरकार बंदरगाह से निकला तो मौसम ठंडा और धूसर था।",
}


@pytest.mark.parametrize("code", sorted(BY_SCRIPT))
def test_common_crawl_languages_by_script_then_ngrams(code):
    guess = langid.identify(BY_SCRIPT[code])
    assert guess.lang == code and guess.confidence >= 0.65, guess


def test_a_dutch_page_is_dutch_not_other():
    page = ("Is uw gazon na de winter kaal en staat het onkruid tussen de tegels? Wij zijn een "
            "hoveniersbedrijf uit de regio en verzorgen het hele jaar door het onderhoud van uw tuin. "
            "Bel ons voor een afspraak, dan komen wij vrijblijvend bij u langs om alles te bekijken.")
    guess = langid.identify(page)
    assert guess.lang == "nl" and guess.confidence >= 0.9, guess
