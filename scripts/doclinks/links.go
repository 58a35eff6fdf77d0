package main

import (
	"bytes"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"unicode"
)

// kind is what is wrong with a link.
type kind int

const (
	noFile    kind = iota + 1 // the target does not exist
	noAnchor                  // the target has no such heading
	outside                   // the target leaves the root
	notMarked                 // an anchor other than a line into a file that is not Markdown
)

func (k kind) String() string {
	switch k {
	case noFile:
		return "no such file or directory"
	case noAnchor:
		return "no such heading"
	case outside:
		return "outside the repository"
	case notMarked:
		return "an anchor into a file that is not Markdown must be a line (#L12)"
	}
	return fmt.Sprintf("kind(%d)", int(k))
}

// problem is one broken link.
type problem struct {
	File   string // as named to check
	Line   int
	Target string
	Kind   kind
}

func (p problem) String() string {
	return fmt.Sprintf("%s:%d: %s: %s", p.File, p.Line, p.Target, p.Kind)
}

// link is a link found in a document.
type link struct {
	target string
	line   int
}

// doc is what the checker needs of a Markdown file.
type doc struct {
	anchors map[string]bool
	links   []link
}

// checker checks files against one root, parsing each Markdown file once.
type checker struct {
	root string
	docs map[string]*doc // by cleaned path
}

func newChecker(root string) *checker {
	return &checker{root: filepath.Clean(root), docs: map[string]*doc{}}
}

func (c *checker) load(path string) (*doc, error) {
	path = filepath.Clean(path)
	if d, ok := c.docs[path]; ok {
		return d, nil
	}
	src, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	d := parse(string(src))
	c.docs[path] = d
	return d, nil
}

var (
	schemeRE = regexp.MustCompile(`^[a-zA-Z][a-zA-Z0-9+.-]*:`)
	lineRE   = regexp.MustCompile(`^L[0-9]+(-L[0-9]+)?$`)
)

// check returns the broken links of the Markdown file at path.
func (c *checker) check(path string) ([]problem, error) {
	d, err := c.load(path)
	if err != nil {
		return nil, err
	}
	var out []problem
	for _, l := range d.links {
		if k := c.resolve(path, l.target); k != 0 {
			out = append(out, problem{File: path, Line: l.line, Target: l.target, Kind: k})
		}
	}
	return out, nil
}

// resolve says what is wrong with target, a link in the file at from; 0
// when nothing is.
func (c *checker) resolve(from, target string) kind {
	if schemeRE.MatchString(target) || strings.HasPrefix(target, "//") {
		return 0 // another site's: not followed
	}
	rest, fragment, _ := strings.Cut(target, "#")
	rest, _, _ = strings.Cut(rest, "?")
	if p, err := url.PathUnescape(rest); err == nil {
		rest = p
	}
	if f, err := url.PathUnescape(fragment); err == nil {
		fragment = f
	}
	var path string
	switch {
	case rest == "":
		path = from
	case strings.HasPrefix(rest, "/"):
		path = filepath.Join(c.root, filepath.FromSlash(rest))
	default:
		path = filepath.Join(filepath.Dir(from), filepath.FromSlash(rest))
	}
	if !c.inside(path) {
		return outside
	}
	st, err := os.Stat(path)
	if err != nil {
		return noFile
	}
	if fragment == "" {
		return 0
	}
	if st.IsDir() || !isMarkdown(path) {
		if !st.IsDir() && lineRE.MatchString(fragment) {
			return 0
		}
		return notMarked
	}
	d, err := c.load(path)
	if err != nil {
		return noFile
	}
	if !d.anchors[fragment] {
		return noAnchor
	}
	return 0
}

// inside reports whether path lies in the root.
func (c *checker) inside(path string) bool {
	abs, err := filepath.Abs(path)
	if err != nil {
		return false
	}
	root, err := filepath.Abs(c.root)
	if err != nil {
		return false
	}
	rel, err := filepath.Rel(root, abs)
	return err == nil && (rel == "." || filepath.IsLocal(rel))
}

func isMarkdown(path string) bool {
	ext := strings.ToLower(filepath.Ext(path))
	return ext == ".md" || ext == ".markdown"
}

var (
	fenceRE    = regexp.MustCompile("^ {0,3}(`{3,}|~{3,})")
	atxRE      = regexp.MustCompile(`^ {0,3}(#{1,6})(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*$`)
	setextRE   = regexp.MustCompile(`^ {0,3}(=+|-+)[ \t]*$`)
	notParaRE  = regexp.MustCompile(`^ {0,3}([-*+]|[0-9]+[.)]|>|\|)`)
	refDefRE   = regexp.MustCompile(`^ {0,3}\[[^\]]+\]:[ \t]*(<[^>]*>|\S+)`)
	htmlAttrRE = regexp.MustCompile(`(?i)<[a-z][^>]*?\s(href|src)\s*=\s*["']([^"']*)["']`)
	htmlIDRE   = regexp.MustCompile(`(?i)<[a-z][^>]*?\s(id|name)\s*=\s*["']([^"']*)["']`)
)

// parse finds the anchors and links of a Markdown document.
func parse(src string) *doc {
	d := &doc{anchors: map[string]bool{}}
	slugs := newSlugger()
	lines := strings.Split(src, "\n")
	var block []string // the paragraph being read
	start := 0         // its first line, 0-based
	flush := func() {
		if len(block) > 0 {
			d.scan(strings.Join(block, "\n"), start)
		}
		block = nil
	}
	fence := ""
	for i, line := range lines {
		line = strings.TrimSuffix(line, "\r")
		if fence != "" {
			if t := strings.TrimSpace(line); strings.HasPrefix(t, fence) && strings.Trim(t, fence[:1]) == "" {
				fence = ""
			}
			continue
		}
		if m := fenceRE.FindStringSubmatch(line); m != nil {
			flush()
			fence = m[1]
			continue
		}
		if strings.TrimSpace(line) == "" {
			flush()
			continue
		}
		if m := atxRE.FindStringSubmatch(line); m != nil {
			flush()
			d.anchors[slugs.slug(m[2])] = true
			d.scan(line, i)
			continue
		}
		if m := setextRE.FindStringSubmatch(line); m != nil && len(block) > 0 && !notParaRE.MatchString(block[0]) {
			d.anchors[slugs.slug(strings.Join(block, " "))] = true
			flush()
			continue
		}
		if len(block) == 0 {
			start = i
		}
		block = append(block, line)
	}
	flush()
	return d
}

// scan collects the links and HTML anchors of a block of text whose first
// line is line first (0-based).
func (d *doc) scan(text string, first int) {
	text = blankCode(text)
	lineAt := func(off int) int { return first + 1 + strings.Count(text[:off], "\n") }
	for i := 0; ; {
		j := strings.Index(text[i:], "](")
		if j < 0 {
			break
		}
		off := i + j + 2
		if !opened(text[:i+j]) {
			i = off
			continue
		}
		if target, ok := destination(text[off:]); ok {
			d.links = append(d.links, link{target: target, line: lineAt(off)})
		}
		i = off
	}
	off := 0
	for _, line := range strings.SplitAfter(text, "\n") {
		if m := refDefRE.FindStringSubmatch(line); m != nil {
			d.links = append(d.links, link{target: strings.Trim(m[1], "<>"), line: lineAt(off)})
		}
		off += len(line)
	}
	for _, m := range htmlAttrRE.FindAllStringSubmatchIndex(text, -1) {
		d.links = append(d.links, link{target: text[m[4]:m[5]], line: lineAt(m[0])})
	}
	for _, m := range htmlIDRE.FindAllStringSubmatch(text, -1) {
		d.anchors[m[2]] = true
	}
}

// opened reports whether s, the text before a link text's "]", holds the
// "[" that opens it.
func opened(s string) bool {
	depth := 0
	for k := len(s) - 1; k >= 0; k-- {
		switch s[k] {
		case ']':
			depth++
		case '[':
			if depth == 0 {
				return true
			}
			depth--
		}
	}
	return false
}

// destination reads a link destination at the start of s, the text after
// "](": <...>, or up to a blank or the parenthesis that closes the link.
func destination(s string) (string, bool) {
	s = strings.TrimLeft(s, " \t\n")
	if strings.HasPrefix(s, "<") {
		end := strings.IndexAny(s, ">\n")
		if end < 0 || s[end] != '>' {
			return "", false
		}
		return s[1:end], true
	}
	depth := 0
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		switch ch := s[i]; {
		case ch == '\\' && i+1 < len(s) && isPunct(s[i+1]):
			b.WriteByte(s[i+1])
			i++
		case ch == '(':
			depth++
			b.WriteByte(ch)
		case ch == ')' && depth == 0:
			return b.String(), b.Len() > 0
		case ch == ')':
			depth--
			b.WriteByte(ch)
		case ch == ' ' || ch == '\t' || ch == '\n':
			return b.String(), b.Len() > 0
		default:
			b.WriteByte(ch)
		}
	}
	return "", false
}

// isPunct reports whether c is ASCII punctuation, which a backslash
// escapes.
func isPunct(c byte) bool {
	return c < 0x80 && (unicode.IsPunct(rune(c)) || unicode.IsSymbol(rune(c)))
}

// blankCode replaces code spans, HTML comments and backslash-escaped
// characters by spaces, keeping every newline, so that what is left has no
// link that is not one and offsets still give line numbers.
func blankCode(s string) string {
	b := []byte(s)
	blank := func(from, to int) {
		for k := from; k < to; k++ {
			if b[k] != '\n' {
				b[k] = ' '
			}
		}
	}
	for i := 0; i < len(b); {
		switch {
		case b[i] == '\\' && i+1 < len(b) && isPunct(b[i+1]):
			blank(i, i+2)
			i += 2
		case bytes.HasPrefix(b[i:], []byte("<!--")):
			end := len(b)
			if k := bytes.Index(b[i+4:], []byte("-->")); k >= 0 {
				end = i + 4 + k + 3
			}
			blank(i, end)
			i = end
		case b[i] == '`':
			n := ticks(b, i)
			end := -1
			for k := i + n; k < len(b); {
				if b[k] != '`' {
					k++
					continue
				}
				m := ticks(b, k)
				if m == n {
					end = k + n
					break
				}
				k += m
			}
			if end < 0 {
				i += n // no closing run: the backticks are text
				continue
			}
			blank(i, end)
			i = end
		default:
			i++
		}
	}
	return string(b)
}

// ticks is the length of the run of backticks at b[i].
func ticks(b []byte, i int) int {
	n := 0
	for i+n < len(b) && b[i+n] == '`' {
		n++
	}
	return n
}

// slugger makes GitHub's anchors for a document's headings, in order.
type slugger struct{ seen map[string]bool }

func newSlugger() *slugger { return &slugger{seen: map[string]bool{}} }

var (
	inlineLinkRE = regexp.MustCompile(`!?\[([^\]]*)\]\([^)]*\)`)
	refLinkRE    = regexp.MustCompile(`!?\[([^\]]*)\]\[[^\]]*\]`)
	tagRE        = regexp.MustCompile(`</?[a-zA-Z][^>]*>`)
)

// slug is the anchor of a heading whose Markdown text is text, as GitHub
// makes it: the rendered text in lower case, without punctuation or
// symbols but hyphens and underscores, each space a hyphen; a repeat gets
// "-1", "-2", ...
func (s *slugger) slug(text string) string {
	text = inlineLinkRE.ReplaceAllString(text, "$1")
	text = refLinkRE.ReplaceAllString(text, "$1")
	text = tagRE.ReplaceAllString(text, "")
	text = strings.ReplaceAll(text, "`", "")
	var b strings.Builder
	for _, r := range strings.ToLower(strings.TrimSpace(text)) {
		switch {
		case r == ' ':
			b.WriteByte('-')
		case r == '-' || r == '_' || unicode.IsLetter(r) || unicode.IsDigit(r) || unicode.IsMark(r):
			b.WriteRune(r)
		}
	}
	base := b.String()
	slug := base
	for n := 1; s.seen[slug]; n++ {
		slug = fmt.Sprintf("%s-%d", base, n)
	}
	s.seen[slug] = true
	return slug
}
