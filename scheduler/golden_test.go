package scheduler

import (
	"bufio"
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata with what the core decides")

// TestGolden replays testdata/*.txt. In those files a line that starts
// with "{" is an event (MarshalEvent's form) and "#" starts a comment; the
// indented lines after an event are the decisions the core made for it
// (Ready.String), or "  error: ..." for an event it refused. With -update
// the decisions are rewritten.
func TestGolden(t *testing.T) {
	files, err := filepath.Glob("testdata/*.txt")
	if err != nil || len(files) == 0 {
		t.Fatalf("no golden files: %v", err)
	}
	for _, file := range files {
		t.Run(strings.TrimSuffix(filepath.Base(file), ".txt"), func(t *testing.T) {
			data, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			got := replayGolden(t, data)
			if *update {
				if err := os.WriteFile(file, got, 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			if diff := cmp.Diff(string(data), string(got)); diff != "" {
				t.Errorf("decisions differ from %s (-want +got), rerun with -update if the change is right:\n%s", file, diff)
			}
		})
	}
}

// replayGolden runs the events of a golden file through a new core and
// returns the file with the decisions written after each event.
func replayGolden(t *testing.T, data []byte) []byte {
	t.Helper()
	c := New(Config{})
	var out bytes.Buffer
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	line := 0
	for sc.Scan() {
		line++
		text := sc.Text()
		switch {
		case strings.HasPrefix(text, "  "):
			continue // an old decision
		case strings.HasPrefix(text, "config "):
			c = New(parseGoldenConfig(t, strings.TrimPrefix(text, "config ")))
			out.WriteString(text + "\n")
			continue
		case !strings.HasPrefix(text, "{"):
			out.WriteString(text + "\n")
			continue
		}
		ev, err := UnmarshalEvent([]byte(text))
		if err != nil {
			t.Fatalf("line %d: %v", line, err)
		}
		out.WriteString(text + "\n")
		r, err := c.Step(ev)
		if err != nil {
			out.WriteString("  error: " + err.Error() + "\n")
			continue
		}
		for _, l := range strings.Split(strings.TrimSuffix(r.String(), "\n"), "\n") {
			if l != "" {
				out.WriteString("  " + l + "\n")
			}
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

func parseGoldenConfig(t *testing.T, s string) Config {
	t.Helper()
	var cfg Config
	for _, kv := range strings.Fields(s) {
		k, v, _ := strings.Cut(kv, "=")
		switch k {
		case "fanout":
			n := 0
			for _, ch := range v {
				n = n*10 + int(ch-'0')
			}
			cfg.OfferFanout = n
		default:
			t.Fatalf("golden config: unknown key %q", k)
		}
	}
	return cfg
}
