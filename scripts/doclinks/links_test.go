package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/google/go-cmp/cmp"
)

// tree writes files (path → content) under a new directory and returns it.
func tree(t *testing.T, files map[string]string) string {
	t.Helper()
	fsys := fstest.MapFS{}
	for name, content := range files {
		fsys[name] = &fstest.MapFile{Data: []byte(content), Mode: 0o644}
	}
	root := t.TempDir()
	if err := os.CopyFS(root, fsys); err != nil {
		t.Fatal(err)
	}
	return root
}

func TestCheck(t *testing.T) {
	tests := []struct {
		name  string
		files map[string]string
		check string // the file checked, README.md when empty
		want  []problem
	}{
		{
			name: "file and heading",
			files: map[string]string{
				"README.md":    "# Top\n\nSee [the page](docs/page.md#second-part) and [a folder](docs/).\n",
				"docs/page.md": "# Page\n\n## Second part\n",
			},
		},
		{
			name:  "missing file",
			files: map[string]string{"README.md": "# Top\n\nline two\n[gone](docs/gone.md)\n"},
			want:  []problem{{Line: 4, Target: "docs/gone.md", Kind: noFile}},
		},
		{
			name: "missing heading",
			files: map[string]string{
				"README.md":    "[page](docs/page.md#third-part)\n",
				"docs/page.md": "# Page\n\n## Second part\n",
			},
			want: []problem{{Line: 1, Target: "docs/page.md#third-part", Kind: noAnchor}},
		},
		{
			name:  "heading of the same file",
			files: map[string]string{"README.md": "# Using it\n\n[up](#using-it), [nowhere](#not-here)\n"},
			want:  []problem{{Line: 3, Target: "#not-here", Kind: noAnchor}},
		},
		{
			name: "links from a page go from its folder",
			files: map[string]string{
				"README.md":    "# Top\n",
				"docs/page.md": "[back](../README.md#top) [root](/README.md) [wrong](README.md)\n",
			},
			check: "docs/page.md",
			want:  []problem{{Line: 1, Target: "README.md", Kind: noFile}},
		},
		{
			name:  "a link may not leave the repository",
			files: map[string]string{"README.md": "[up](../outside.md)\n"},
			want:  []problem{{Line: 1, Target: "../outside.md", Kind: outside}},
		},
		{
			name: "code is not a link",
			files: map[string]string{"README.md": "`[a](gone1.md)` and ``x `[b](gone2.md)` y``\n\n" +
				"```go\n[c](gone3.md)\n```\n\n~~~\n[d](gone4.md)\n~~~\n\n" +
				"\\[e](gone5.md) <!-- [f](gone6.md) -->\n\n[g](gone7.md)\n"},
			want: []problem{{Line: 13, Target: "gone7.md", Kind: noFile}},
		},
		{
			name:  "a code span across lines",
			files: map[string]string{"README.md": "a `span that\ngoes on [x](gone.md)` and [y](gone2.md)\n"},
			want:  []problem{{Line: 2, Target: "gone2.md", Kind: noFile}},
		},
		{
			name: "other sites are not followed",
			files: map[string]string{"README.md": "[a](https://example.com/x#y) [b](mailto:a@example.com) " +
				"[c](//example.com/z) <https://example.com>\n"},
		},
		{
			name: "headings as GitHub names them",
			files: map[string]string{"README.md": "## `caisson run` --gpus & MIG\n\n## Docker volumes in Caisson containers\n\n" +
				"### Notes\n\n### Notes\n\n### Über [Links](x.md) <em>and</em> tags ###\n\nSetext heading\n--------------\n\n" +
				"[a](#caisson-run---gpus--mig) [b](#docker-volumes-in-caisson-containers) [c](#notes) [d](#notes-1) " +
				"[e](#über-links-and-tags) [f](#setext-heading) [g](#notes-2) [h](#%C3%BCber-links-and-tags)\n",
				"x.md": ""},
			want: []problem{{Line: 14, Target: "#notes-2", Kind: noAnchor}},
		},
		{
			name: "HTML anchors and links",
			files: map[string]string{"README.md": "<a id=\"here\"></a>\n\n[a](#here) <img src=\"gone.png\"> <a href=\"docs/\">d</a>\n",
				"docs/x": ""},
			want: []problem{{Line: 3, Target: "gone.png", Kind: noFile}},
		},
		{
			name: "reference definitions",
			files: map[string]string{"README.md": "[a][one] [b][two]\n\n[one]: docs/a.md\n[two]: <docs/b.md> \"title\"\n",
				"docs/a.md": ""},
			want: []problem{{Line: 4, Target: "docs/b.md", Kind: noFile}},
		},
		{
			name: "anchors into other files",
			files: map[string]string{"README.md": "[a](main.go#L3) [b](main.go#L3-L9) [c](main.go#top) [d](docs/#x) [e](my%20page.md#page)\n",
				"main.go": "package main\n", "docs/x.md": "", "my page.md": "# Page\n"},
			want: []problem{
				{Line: 1, Target: "main.go#top", Kind: notMarked},
				{Line: 1, Target: "docs/#x", Kind: notMarked},
			},
		},
		{
			name:  "titles and angle brackets",
			files: map[string]string{"README.md": "[a](x.md \"title\") [b](<x.md>) [c](y(1).md)\n", "x.md": "", "y(1).md": ""},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := tree(t, tt.files)
			file := tt.check
			if file == "" {
				file = "README.md"
			}
			path := filepath.Join(root, filepath.FromSlash(file))
			got, err := newChecker(root).check(path)
			if err != nil {
				t.Fatal(err)
			}
			for i := range tt.want {
				tt.want[i].File = path
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("problems (-want +got):\n%s", diff)
			}
		})
	}
}

// TestRun: a broken link makes the command fail, naming it; good links
// pass silently.
func TestRun(t *testing.T) {
	root := tree(t, map[string]string{
		"README.md":       "# Caisson\n\n[Contributing](CONTRIBUTING.md)\n",
		"CONTRIBUTING.md": "# Contributing\n\n[map](docs/architecture.md#layout)\n",
		"docs/architecture.md": "# Architecture\n\n## Layout\n\n[back](../README.md#caisson), " +
			"[broken](../README.md#no-such-part)\n",
	})
	files := []string{"README.md", "CONTRIBUTING.md", "docs/architecture.md"}
	for i, f := range files {
		files[i] = filepath.Join(root, f)
	}
	var out bytes.Buffer
	if code := run(append([]string{"-root", root}, files...), &out); code != 1 {
		t.Errorf("exit status %d, want 1; output:\n%s", code, out.String())
	}
	want := filepath.Join(root, "docs/architecture.md") + ":5: ../README.md#no-such-part: " + noAnchor.String() + "\n"
	if diff := cmp.Diff(want, out.String()); diff != "" {
		t.Errorf("output (-want +got):\n%s", diff)
	}

	// Fixed, it passes.
	fixed := strings.Replace("[broken](../README.md#no-such-part)", "no-such-part", "caisson", 1)
	page := filepath.Join(root, "docs/architecture.md")
	if err := os.WriteFile(page, []byte("# Architecture\n\n## Layout\n\n"+fixed+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out.Reset()
	if code := run(append([]string{"-root", root}, files...), &out); code != 0 || out.Len() != 0 {
		t.Errorf("exit status %d, want 0 and no output; output:\n%s", code, out.String())
	}

	// A file it cannot read, or no file: bad usage.
	if code := run([]string{"-root", root, filepath.Join(root, "missing.md")}, &out); code != 2 {
		t.Errorf("missing file: exit status %d, want 2", code)
	}
	if code := run(nil, &out); code != 2 {
		t.Errorf("no file: exit status %d, want 2", code)
	}
}
