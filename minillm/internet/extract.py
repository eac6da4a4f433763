"""HTML -> main text: keep the article, drop the page furniture around it.

The second stage of the cleaning pipeline (after the URL filter). A crawled page is mostly
not the text we want: navigation, menus, headers and footers, cookie banners, ads, share
buttons, "related articles" link lists, comment sections. FineWeb runs trafilatura here;
this is our own, smaller take on the same idea (the five steps: extract_blocks). The
result is one block per line, as trafilatura and Common Crawl's WET files lay text out
(the line-based quality rules downstream count lines that way); a <pre> block keeps its
own line breaks.

    >>> extract_text("<nav><a href=/>Home</a></nav><article><h1>Tides</h1>"
    ...              "<p>The moon pulls the sea.</p></article><footer>(c) 2024</footer>")
    'Tides\\nThe moon pulls the sea.'

    python -m minillm.internet.extract page.html      # print the main text of a file

Every walk over the tree is a loop over an explicit stack, never a recursion: real pages
nest thousands of unclosed <font> and <div> elements. Read langid.py next.
"""
import re
import sys
from html.parser import HTMLParser

MAX_HTML_CHARS = 1 << 20    # a longer page is cut here first (Common Crawl cuts bodies at 1 MiB)

# Elements whose whole subtree is never main text.
DROP_TAGS = frozenset("""
    script style noscript template svg math canvas head title meta link iframe object embed
    nav aside button select option textarea input label menu dialog video audio map
""".split())
CHROME_ROLES = frozenset(["navigation", "search", "dialog", "alertdialog", "menu", "menubar",
                          "toolbar", "complementary"])
# Page chrome by tag or ARIA role: strong evidence against, unless inside the main content
# (an article's own <header> holds its title) or holding most of the page's text (Webflow
# puts a whole blog post inside <header>).
CHROME_TAGS = frozenset(["header", "footer"])
CHROME_LANDMARKS = frozenset(["banner", "contentinfo"])
MAIN_TAGS = frozenset(["main", "article"])
HEAD_TAGS = frozenset("title meta link style script base noscript template".split())
HEADING_TAGS = frozenset(["h1", "h2", "h3", "h4", "h5", "h6"])
VOID_TAGS = frozenset("area base br col embed hr img input link meta param source track wbr".split())
# Elements that start a new block of text; everything else is inline.
BLOCK_TAGS = frozenset("""
    p div section article main body header footer form h1 h2 h3 h4 h5 h6 li ul ol dl dt dd
    pre blockquote table thead tbody tfoot tr td th caption figure figcaption address details
    summary hr br img
""".split())
# A <p> is closed implicitly by the start of any of these (HTML's optional end tag rule).
CLOSES_P = BLOCK_TAGS - {"br", "hr", "img"} | {"nav", "aside"}

# class/id words, as evidence about an element (a word matches a token of the class/id
# split on non-alphanumerics: "cookie-banner" -> "cookie", "banner"). Evidence, not a
# verdict: "elementor-widget-container" holds most of WordPress's main text, and
# "entry-content no-share" is the article itself.
STRONG_WORDS = frozenset("""
    cookie cookies consent gdpr comment comments disqus respond replies related recommended
    outbrain taboola newsletter subscribe signup breadcrumb breadcrumbs pagination pager
    footer copyright colophon
""".split())
WEAK_WORDS = frozenset("""
    banner navbar nav navigation menu menus sidebar masthead header topbar toolbar share
    sharing social promo promotion ad ads advert advertisement sponsor sponsored popup modal
    widget widgets skip tags tagcloud meta byline dateline timestamp reply
""".split())
CONTENT_WORDS = frozenset("content entry article post main body text story prose".split())
DROP_SCORE = 2          # an element scoring this much evidence against it is dropped
PROSE_CHARS = 200       # this much text outside links, with few links, is evidence for
MOST_OF_PAGE = 0.5      # share of the page's text that makes an element the content

# A block that is only a date ("May 18, 2024", "18.05.2024", "2024-05-18") is page metadata.
_DATE_ONLY = re.compile(
    r"(?:(?:posted|published|updated)(?: on)?:?\s*)?"
    r"(?:\w{3,9}\.? \d{1,2},? \d{4}|\d{1,2}\.? \w{3,9}\.? \d{4}|\d{1,2}[./-]\d{1,2}[./-]\d{2,4}|\d{4}-\d{2}-\d{2})",
    re.IGNORECASE)
# A short block that is a copyright line ("© 2024 Example", "Copyright 2024 ...") is a footer.
_COPYRIGHT = re.compile(r"(?:©|\(c\)|copyright\b|all rights reserved)", re.IGNORECASE)
COPYRIGHT_MAX_CHARS = 200
_TOKEN_SPLIT = re.compile(r"[^a-z0-9]+")
_SPACE = re.compile(r"\s+")
# A block with more than half its characters inside <a> is navigation -- unless it also has
# a sentence's worth of words outside its links (link-rich prose, as on Wikipedia).
LINK_DENSITY_MAX = 0.5
MIN_PLAIN_WORDS = 8


class Node:
    """One element: tag, attributes, children (Node or str), parent, and the characters of
    visible text below it, `chars`, of which `link_chars` inside <a> (see measure)."""
    __slots__ = ("tag", "attrs", "children", "parent", "chars", "link_chars")

    def __init__(self, tag, attrs, parent):
        self.tag, self.attrs, self.children, self.parent = tag, attrs, [], parent
        self.chars = self.link_chars = 0


class _TreeBuilder(HTMLParser):
    """Builds a Node tree, repairing the usual broken HTML: unclosed <p>/<li>/<head>, stray
    end tags. Elements that are never text (_never_text) are left out as they come."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.root = Node("#root", {}, None)
        self.stack = [self.root]
        self.in_head = False

    def _close_head(self):
        # subtle: </head> is optional; the first thing that cannot live in <head> ends it.
        # Without this, a page missing </head> would be all head, and heads are dropped.
        if self.in_head:
            self._close_up_to("head", stop_at=())
            self.in_head = False

    def handle_starttag(self, tag, attrs):
        if tag not in HEAD_TAGS:
            self._close_head()
        top = self.stack[-1]
        if tag in CLOSES_P and top.tag == "p":
            self.stack.pop()
        if tag == "li":
            self._close_up_to("li", stop_at=("ul", "ol", "menu"))
        if tag in ("dt", "dd") and self.stack[-1].tag in ("dt", "dd"):
            self.stack.pop()
        if tag in ("td", "th", "tr"):
            for inner in (("td", "th") if tag != "tr" else ("td", "th", "tr")):
                if self.stack[-1].tag == inner:
                    self.stack.pop()
        node = Node(tag, {k: (v or "") for k, v in attrs}, self.stack[-1])
        if not _never_text(node):       # else it still collects its content, but is no child
            self.stack[-1].children.append(node)
        if tag not in VOID_TAGS:
            self.stack.append(node)
        self.in_head = self.in_head or tag == "head"

    def handle_startendtag(self, tag, attrs):
        if tag not in HEAD_TAGS:
            self._close_head()
        node = Node(tag, {k: (v or "") for k, v in attrs}, self.stack[-1])
        if not _never_text(node):
            self.stack[-1].children.append(node)

    def handle_endtag(self, tag):
        if tag not in VOID_TAGS:
            self._close_up_to(tag, stop_at=())
        self.in_head = self.in_head and tag != "head"

    def _close_up_to(self, tag, stop_at):
        """Pop the stack down to and including the innermost `tag`, if it is open."""
        for i in range(len(self.stack) - 1, 0, -1):
            if self.stack[i].tag == tag:
                del self.stack[i:]
                return
            if self.stack[i].tag in stop_at:
                return

    def handle_data(self, data):
        if self.in_head and self.stack[-1].tag == "head" and data.strip():
            self._close_head()
        self.stack[-1].children.append(data)


def parse_html(html):
    """Parse HTML text into a Node tree (root tag "#root"), without the elements that are
    never text: scripts, styles, <head>, navigation, form controls, hidden elements."""
    builder = _TreeBuilder()
    builder.feed(html[:MAX_HTML_CHARS])
    builder.close()
    return builder.root


def _elements(root):
    """Every element below `root` in document order (pre-order), iteratively."""
    out, stack = [], [root]
    while stack:
        node = stack.pop()
        out.append(node)
        stack.extend(c for c in reversed(node.children) if isinstance(c, Node))
    return out


def measure(root):
    """Fill in chars and link_chars of every element below `root`, children before parents."""
    for node in reversed(_elements(root)):
        chars = link = 0
        for c in node.children:
            if isinstance(c, str):
                chars += len(c.strip())
            else:
                chars, link = chars + c.chars, link + c.link_chars
        node.chars, node.link_chars = chars, (chars if node.tag == "a" else link)
    return root


def _is_main(node):
    return node.tag in MAIN_TAGS or node.attrs.get("role") == "main"


def _never_text(node):
    """Elements dropped whatever they hold: scripts, forms' controls, navigation, hidden."""
    attrs = node.attrs
    return (node.tag in DROP_TAGS or "hidden" in attrs or attrs.get("aria-hidden") == "true"
            or "display:none" in _SPACE.sub("", attrs.get("style", "")).lower()
            or attrs.get("role") in CHROME_ROLES)


def evidence(node, in_main, page_chars):
    """How strongly `node` looks like page furniture: >= DROP_SCORE drops it.

    Against: a chrome tag or landmark outside the main content (+3), a strong class/id word
    such as "comments" or "cookie" (+3), else each weak one such as "sidebar" or "widget" (+1,
    at most +2: "sidebar widget-area"), a link density above one half (+1). For: a content word such as "entry" or "content" (-1),
    a paragraph's worth of text with few links (-1), or as much and most of the page's
    text (-3)."""
    score = 0
    if not in_main and (node.tag in CHROME_TAGS or node.attrs.get("role") in CHROME_LANDMARKS):
        score += 3
    names = node.attrs.get("class", "") + " " + node.attrs.get("id", "")
    words = set(_TOKEN_SPLIT.split(names.lower())) if len(names) > 1 else set()
    score += 3 if words & STRONG_WORDS else min(2, len(words & WEAK_WORDS))
    score -= 1 if words & CONTENT_WORDS else 0
    plain = node.chars - node.link_chars
    density = node.link_chars / node.chars if node.chars else 0.0
    score += 1 if density > LINK_DENSITY_MAX else 0
    if plain >= PROSE_CHARS and plain >= MOST_OF_PAGE * page_chars:
        score -= 3
    elif plain >= PROSE_CHARS and density < 0.3:
        score -= 1
    return score


def prune(root):
    """Remove page furniture below `root`, in place, top down; returns `root`, measured.
    With the text measured, every element whose evidence reaches DROP_SCORE goes (never
    <html>, <body> or a <main>/<article>)."""
    measure(root)
    page_chars = root.chars - root.link_chars
    stack = [(root, False)]
    while stack:
        node, in_main = stack.pop()
        kept = []
        for c in node.children:
            if isinstance(c, Node):
                if c.tag not in ("html", "body") and not _is_main(c) and c.chars \
                        and evidence(c, in_main, page_chars) >= DROP_SCORE:
                    continue
                stack.append((c, in_main or _is_main(c)))
            kept.append(c)
        node.children = kept
    return measure(root)


def content_root(root):
    """The <main>/<article>/role=main element with the most text if it holds most of the
    page's text (MOST_OF_PAGE), else <body>, else the root. # subtle: a blog index has one
    small <article> per post, and a profile page puts only the author's name in one; the
    page's main text is then the whole (pruned) body. `root` must be measured."""
    elements = _elements(root)
    body = next((n for n in elements if n.tag == "body"), root)
    mains = [n for n in elements if _is_main(n)]
    best = max(mains, key=lambda n: n.chars - n.link_chars, default=None)
    page = body.chars - body.link_chars
    if best is not None and best.chars - best.link_chars >= MOST_OF_PAGE * page > 0:
        return best
    return body


class _Block:
    """A run of text between block boundaries, with how much of it is link text."""
    __slots__ = ("parts", "link_chars", "plain_words", "list_id", "heading", "pre", "_text")

    def __init__(self, list_id, heading, pre):
        self.parts, self.link_chars, self.plain_words = [], 0, 0
        self.list_id, self.heading, self.pre, self._text = list_id, heading, pre, None

    def text(self):
        """The block's text (computed once the walk has filled `parts`)."""
        if self._text is None:
            raw = "".join(self.parts)
            if self.pre:    # preformatted: keep the lines, drop blank ones at both ends
                self._text = "\n".join(line.rstrip() for line in raw.strip("\n").split("\n")).strip("\n")
            else:
                self._text = _SPACE.sub(" ", raw).strip()
        return self._text


_BOUNDARY = object()


def collect_blocks(root):
    """Walk `root` in document order, cutting its text into _Blocks at block tags."""
    blocks, current = [], None
    stack = [(root, False, None, False, False)]     # (item, in_link, list_id, heading, pre)
    while stack:
        item, in_link, list_id, heading, pre = stack.pop()
        if item is _BOUNDARY:
            current = None
        elif isinstance(item, str):
            if current is None:
                current = _Block(list_id, heading, pre)
                blocks.append(current)
            current.parts.append(item)
            if in_link:
                current.link_chars += len(item.strip())
            else:
                current.plain_words += len(item.split())
        else:
            tag = item.tag
            inner = (in_link or tag == "a", id(item) if tag in ("ul", "ol", "dl", "table") else list_id,
                     heading or tag in HEADING_TAGS, pre or tag == "pre")
            if tag in BLOCK_TAGS:
                current = None
                stack.append((_BOUNDARY, False, None, False, False))
            stack.extend((c, *inner) for c in reversed(item.children))
    return [b for b in blocks if b.text()]


def _is_navigation(blocks):
    """Link-dense text with few words of its own: a menu, a link list, a tag cloud."""
    chars = sum(len(b.text()) for b in blocks)
    density = sum(b.link_chars for b in blocks) / chars if chars else 0.0
    plain_words = sum(b.plain_words for b in blocks) / len(blocks)
    return density > LINK_DENSITY_MAX and plain_words < MIN_PLAIN_WORDS


def extract_blocks(html):
    """HTML -> list of main-text blocks (strings), boilerplate removed, in five steps:

      1. parse the HTML into a small element tree (stdlib html.parser, tolerant of bad
         HTML: unclosed <p>, <li>, <head>, stray end tags), cut at MAX_HTML_CHARS;
      2. leave out, while parsing, subtrees that are never main text: script/style/nav/
         aside/form controls/..., hidden elements, navigation and search landmarks;
      3. measure the text and link text below every element, and drop the elements that
         the evidence says are furniture (see `evidence`: chrome tags, class/id words, link
         density against text density and share of the page);
      4. pick the content root: a <main>/<article> if it holds most of the page's text,
         else the body;
      5. walk it collecting blocks (paragraphs, headings, list items, table cells,
         preformatted text) and drop link-dense blocks (menus and link lists that slipped
         through), link-dense lists as a whole, blocks that are only a date, and short
         copyright lines."""
    blocks = collect_blocks(content_root(prune(parse_html(html))))
    # A list or table whose items are mostly links is a menu or a link farm: drop it whole.
    lists = {}
    for b in blocks:
        if b.list_id is not None:
            lists.setdefault(b.list_id, []).append(b)
    bad_lists = {k for k, members in lists.items() if _is_navigation(members)}
    out = []
    for b in blocks:
        if b.list_id in bad_lists:
            continue
        text = b.text()
        if _DATE_ONLY.fullmatch(text) or len(text) < COPYRIGHT_MAX_CHARS and _COPYRIGHT.search(text):
            continue
        # A heading is kept unless it is all link (a section title carries an "[edit]" link).
        if b.heading and b.link_chars < len(text) or not _is_navigation([b]):
            out.append(text)
    return out


def extract_text(html):
    """HTML -> main text, one block a line."""
    return "\n".join(extract_blocks(html))


if __name__ == "__main__":
    with open(sys.argv[1], encoding="utf-8", errors="replace") as f:
        print(extract_text(f.read()))
