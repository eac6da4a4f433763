"""HTML -> main text: keep the article, drop the page furniture around it.

The second stage of the cleaning pipeline (after the URL filter). A crawled page is mostly
not the text we want: navigation, menus, headers and footers, cookie banners, ads, share
buttons, "related articles" link lists, comment sections. FineWeb runs trafilatura here;
this is our own, smaller take on the same idea (the four steps: extract_blocks). The
result is one block per line, as trafilatura and Common Crawl's WET files lay text out
(the line-based quality rules downstream count lines that way).

    >>> extract_text("<nav><a href=/>Home</a></nav><article><h1>Tides</h1>"
    ...              "<p>The moon pulls the sea.</p></article><footer>(c) 2024</footer>")
    'Tides\\nThe moon pulls the sea.'

    python -m minillm.internet.extract page.html      # print the main text of a file

Read langid.py next.
"""
import re
import sys
from html.parser import HTMLParser

# Elements whose whole subtree is never main text.
DROP_TAGS = frozenset("""
    script style noscript template svg math canvas head title meta link iframe object embed
    nav aside form button select option textarea input label menu dialog video audio map
""".split())
# Dropped unless they sit inside the main content (an article's own header holds its title).
CHROME_TAGS = frozenset(["header", "footer"])
CHROME_ROLES = frozenset(["navigation", "banner", "contentinfo", "complementary", "search",
                          "dialog", "alertdialog", "menu", "menubar", "toolbar"])
MAIN_TAGS = frozenset(["main", "article"])
HEADING_TAGS = frozenset(["h1", "h2", "h3", "h4", "h5", "h6"])
VOID_TAGS = frozenset("area base br col embed hr img input link meta param source track wbr".split())
# Elements that start a new block of text; everything else is inline.
BLOCK_TAGS = frozenset("""
    p div section article main body h1 h2 h3 h4 h5 h6 li ul ol dl dt dd pre blockquote
    table thead tbody tfoot tr td th caption figure figcaption address details summary hr br
""".split())
# A <p> is closed implicitly by the start of any of these (HTML's optional end tag rule).
CLOSES_P = BLOCK_TAGS - {"br", "hr"} | {"header", "footer", "nav", "aside", "form"}

# class/id words that name boilerplate. A word matches if the class/id, split on
# non-alphanumerics, has it as a token ("cookie-banner" -> "cookie", "banner").
BOILERPLATE_WORDS = frozenset("""
    cookie cookies consent gdpr banner navbar nav navigation menu menus breadcrumb breadcrumbs
    sidebar footer masthead header topbar toolbar comment comments disqus respond reply replies
    share sharing social related recommended promo promotion ad ads advert advertisement
    sponsor sponsored newsletter subscribe signup popup modal widget widgets pagination pager
    skip tags tagcloud outbrain taboola meta byline dateline timestamp
""".split())
# A block that is only a date ("May 18, 2024", "18.05.2024", "2024-05-18") is page metadata.
_DATE_ONLY = re.compile(
    r"(?:(?:posted|published|updated)(?: on)?:?\s*)?"
    r"(?:\w{3,9}\.? \d{1,2},? \d{4}|\d{1,2}\.? \w{3,9}\.? \d{4}|\d{1,2}[./-]\d{1,2}[./-]\d{2,4}|\d{4}-\d{2}-\d{2})",
    re.IGNORECASE)
_TOKEN_SPLIT = re.compile(r"[^a-z0-9]+")
_SPACE = re.compile(r"\s+")
# A block with more than half its characters inside <a> is navigation -- unless it also has
# a sentence's worth of words outside its links (link-rich prose, as on Wikipedia).
LINK_DENSITY_MAX = 0.5
MIN_PLAIN_WORDS = 8


class Node:
    """One element: tag, attributes, children (Node or str), parent."""
    __slots__ = ("tag", "attrs", "children", "parent")

    def __init__(self, tag, attrs, parent):
        self.tag, self.attrs, self.children, self.parent = tag, attrs, [], parent


class _TreeBuilder(HTMLParser):
    """Builds a Node tree, repairing the usual broken HTML: unclosed <p>/<li>, stray end tags."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.root = Node("#root", {}, None)
        self.stack = [self.root]

    def handle_starttag(self, tag, attrs):
        top = self.stack[-1]
        if tag in CLOSES_P and top.tag == "p":
            self.stack.pop()
        if tag == "li":
            self._close_up_to("li", stop_at=("ul", "ol", "menu"))
        if tag in ("dt", "dd"):
            self._close_up_to(self.stack[-1].tag if self.stack[-1].tag in ("dt", "dd") else "", ())
        if tag in ("td", "th", "tr"):
            for inner in (("td", "th") if tag != "tr" else ("td", "th", "tr")):
                if self.stack[-1].tag == inner:
                    self.stack.pop()
        node = Node(tag, {k: (v or "") for k, v in attrs}, self.stack[-1])
        self.stack[-1].children.append(node)
        if tag not in VOID_TAGS:
            self.stack.append(node)

    def handle_startendtag(self, tag, attrs):
        node = Node(tag, {k: (v or "") for k, v in attrs}, self.stack[-1])
        self.stack[-1].children.append(node)

    def handle_endtag(self, tag):
        if tag in VOID_TAGS:
            return
        self._close_up_to(tag, stop_at=())

    def _close_up_to(self, tag, stop_at):
        """Pop the stack down to and including the innermost `tag`, if it is open."""
        for i in range(len(self.stack) - 1, 0, -1):
            if self.stack[i].tag == tag:
                del self.stack[i:]
                return
            if self.stack[i].tag in stop_at:
                return

    def handle_data(self, data):
        self.stack[-1].children.append(data)


def parse_html(html):
    """Parse HTML text into a Node tree (root tag "#root")."""
    builder = _TreeBuilder()
    builder.feed(html)
    builder.close()
    return builder.root


def _is_main(node):
    return node.tag in MAIN_TAGS or node.attrs.get("role") == "main"


def _is_boilerplate(node, in_main):
    """Whether to drop `node` with its subtree."""
    tag, attrs = node.tag, node.attrs
    if tag in DROP_TAGS:
        return True
    if tag in CHROME_TAGS and not in_main:
        return True
    if "hidden" in attrs or attrs.get("aria-hidden") == "true":
        return True
    if _SPACE.sub("", attrs.get("style", "")).lower().find("display:none") >= 0:
        return True
    if attrs.get("role") in CHROME_ROLES:
        return True
    if tag in ("html", "body") or _is_main(node):
        return False
    names = (attrs.get("class", "") + " " + attrs.get("id", "")).lower()
    return any(tok in BOILERPLATE_WORDS for tok in _TOKEN_SPLIT.split(names))


def _contains_main(node):
    """Whether a <main>/<article> lies below `node` (we never prune its ancestors)."""
    stack = [node]
    while stack:
        n = stack.pop()
        for c in n.children:
            if isinstance(c, Node):
                if _is_main(c):
                    return True
                stack.append(c)
    return False


def prune(node, in_main=False):
    """Remove boilerplate subtrees below `node`, in place. Returns `node`."""
    kept = []
    for child in node.children:
        if isinstance(child, Node):
            child_in_main = in_main or _is_main(child)
            if _is_boilerplate(child, in_main) and not _contains_main(child):
                continue
            prune(child, child_in_main)
        kept.append(child)
    node.children = kept
    return node


def _text_len(node):
    """Characters of visible text below `node` (whitespace squeezed)."""
    total, stack = 0, [node]
    while stack:
        n = stack.pop()
        for c in n.children:
            if isinstance(c, str):
                total += len(c.strip())
            else:
                stack.append(c)
    return total


def content_root(root):
    """The <main>/<article>/role=main element with the most text, else <body>, else the root."""
    best, best_len, body, stack = None, -1, None, [root]
    while stack:
        n = stack.pop()
        for c in n.children:
            if isinstance(c, Node):
                if c.tag == "body" and body is None:
                    body = c
                if _is_main(c):
                    length = _text_len(c)
                    if length > best_len:
                        best, best_len = c, length
                stack.append(c)
    return best if best is not None and best_len > 0 else (body or root)


class _Block:
    """A run of text between block boundaries, with how much of it is link text."""
    __slots__ = ("parts", "link_chars", "plain_words", "list_id", "heading")

    def __init__(self, list_id, heading):
        self.parts, self.link_chars, self.plain_words = [], 0, 0
        self.list_id, self.heading = list_id, heading

    def text(self):
        return _SPACE.sub(" ", "".join(self.parts)).strip()


def _collect_blocks(node, blocks, in_link=False, list_id=None, heading=False):
    """Depth-first walk appending _Blocks; a block tag opens a fresh block."""
    for child in node.children:
        if isinstance(child, str):
            if not blocks or blocks[-1] is None:
                blocks.append(_Block(list_id, heading))
            block = blocks[-1]
            block.parts.append(child)
            if in_link:
                block.link_chars += len(child.strip())
            else:
                block.plain_words += len(child.split())
            continue
        tag = child.tag
        is_block = tag in BLOCK_TAGS
        child_list = id(child) if tag in ("ul", "ol", "dl", "table") else list_id
        if is_block:
            blocks.append(None)      # boundary marker
        _collect_blocks(child, blocks, in_link or tag == "a", child_list,
                        heading or tag in HEADING_TAGS)
        if is_block:
            blocks.append(None)
        elif tag in ("td", "th", "img"):
            blocks.append(None)


def _is_navigation(blocks):
    """Link-dense text with few words of its own: a menu, a link list, a tag cloud."""
    chars = sum(len(b.text()) for b in blocks)
    density = sum(b.link_chars for b in blocks) / chars if chars else 0.0
    plain_words = sum(b.plain_words for b in blocks) / len(blocks)
    return density > LINK_DENSITY_MAX and plain_words < MIN_PLAIN_WORDS


def extract_blocks(html):
    """HTML -> list of main-text blocks (strings), boilerplate removed, in four steps:

      1. parse the HTML into a small element tree (stdlib html.parser, tolerant of bad HTML);
      2. prune subtrees that are never main text: script/style/nav/header/footer/aside/
         form/..., hidden elements, ARIA landmarks of the page chrome (navigation, banner,
         contentinfo), and elements whose class/id names them boilerplate (cookie, menu,
         sidebar, comments, share, ads, ...);
      3. pick the content root: the <main>/<article>/role=main element holding the most
         text, else the body;
      4. walk it collecting blocks (paragraphs, headings, list items, table cells,
         preformatted text) and drop link-dense blocks (menus and link lists that slipped
         through), link-dense lists as a whole, and blocks that are only a date."""
    root = prune(parse_html(html))
    raw = []
    _collect_blocks(content_root(root), raw)
    blocks = [b for b in raw if b is not None and b.text()]
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
        if _DATE_ONLY.fullmatch(text):
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
