// Command doclinks checks the links of Markdown files: every relative link
// must name a file or directory of the repository, and every anchor
// (#heading) a heading of the Markdown file it points into. make lint runs
// it over README.md, CONTRIBUTING.md and docs/.
//
// Usage:
//
//	go run ./scripts/doclinks [-root DIR] FILE.md...
//
// It prints one line per broken link, FILE:LINE: TARGET: what is wrong, and
// exits 1 when there is one; 2 on bad usage or a file it cannot read.
//
// What counts as a link: inline links and images ([text](target),
// ![alt](target)), reference definitions ([label]: target) and the href
// and src attributes of HTML tags, outside code spans, fenced code blocks
// and HTML comments. Links with a scheme (https:, mailto:) are not
// followed. A target starting with "/" is taken from the root (-root, the
// current directory by default); no target may leave the root. Anchors are
// the headings' slugs as GitHub makes them (lower case, punctuation
// dropped, spaces turned into hyphens, "-1", "-2" appended to repeats) and
// the id and name attributes of HTML tags; an anchor into a file that is
// not Markdown must be a line anchor (#L12, #L12-L20).
package main
