package main

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"

	"github.com/caisson/caisson/api"
	"github.com/caisson/caisson/internal/testutil"
	"github.com/caisson/caisson/scheduler/scenario"
	"github.com/caisson/caisson/scheduler/sim"
)

func TestSimScenario(t *testing.T) {
	clearSettingsEnv(t)
	plot := filepath.Join(t.TempDir(), "shares.svg")
	out, err := runCaisson(t, "sim", "../../examples/sim-small.yaml", "--format", "json", "--plot", plot)
	if err != nil {
		t.Fatal(err)
	}
	var rep map[string]any
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("%v:\n%s", err, out)
	}
	for _, k := range []string{"tasks_submitted", "tasks_placed", "tasks_pending", "placements_per_sec", "decision_latency_us",
		"offers", "overcommit_violations", "fairness", "sla", "reclaim", "utilization", "gpu_allocation_ratio", "peak_rss_bytes"} {
		if _, ok := rep[k]; !ok {
			t.Errorf("the report has no %s", k)
		}
	}
	if rep["scenario"] != "sim-small.yaml" || rep["sessions_finished"] != float64(3) {
		t.Errorf("report %v", rep)
	}
	data, err := os.ReadFile(plot)
	if err != nil {
		t.Fatal(err)
	}
	var doc struct{ XMLName xml.Name }
	if err := xml.Unmarshal(data, &doc); err != nil || doc.XMLName.Local != "svg" || !strings.Contains(string(data), "team-b") {
		t.Fatalf("plot is not an SVG of the consumers: %v", err)
	}
}

func TestSimTableAndSources(t *testing.T) {
	clearSettingsEnv(t)
	prof := filepath.Join(t.TempDir(), "cpu.prof")
	out, err := runCaisson(t, "sim", "--agents", "10", "--sessions", "5", "--tasks", "200", "--offer-fanout", "2", "--duration", "2m", "--cpuprofile", prof)
	if err != nil {
		t.Fatal(err)
	}
	if st, err := os.Stat(prof); err != nil || st.Size() == 0 {
		t.Errorf("--cpuprofile wrote no profile: %v", err)
	}
	for _, want := range []string{"synthetic: 10 agents, 5 sessions, 200 tasks", "offer fan-out 2", "PLACEMENTS/S", "OVERCOMMIT VIOLATIONS   0"} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
	out, err = runCaisson(t, "sim", "--trace", "openb", "--format", "json", "--duration", "1h")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, `"agents": 1213`) {
		t.Errorf("trace replay:\n%s", out)
	}
}

func TestSimBadInput(t *testing.T) {
	clearSettingsEnv(t)
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte("version: 1\nagents: []\nconsumers: []\nsessions:\n  - id: x\n    consumer: nobody\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	plot := filepath.Join(dir, "p.svg")
	for _, args := range [][]string{
		{"sim"},
		{"sim", "../../examples/sim-small.yaml", "--agents", "3"},
		{"sim", "--trace", "borg"},
		{"sim", "--trace", "openb", "--nodes", "x.csv"},
		{"sim", "--nodes", "x.csv", "--pods", "y.csv"},
		{"sim", "--agents", "0"},
		{"sim", "--agents", "5", "--sessions", "10", "--tasks", "3"},
		{"sim", "../../examples/sim-small.yaml", "--format", "yaml"},
		{"sim", "../../examples/sim-small.yaml", "--offer-fanout", "-1"},
		{"sim", "../../examples/sim-small.yaml", "--sla-slack", "0"},
		{"sim", bad, "--plot", plot},
		{"sim", "/dev/zero"},
		{"sim", dir},
		{"sim", "--trace", "openb", "--nodes", "/dev/zero", "--pods", "/dev/zero"},
		{"sim", "--trace", "openb", "--nodes", "../../scheduler/trace/testdata/openb-2023/openb_node_list_gpu_node.csv", "--pods", dir},
	} {
		if _, err := runCaisson(t, args...); !errors.Is(err, api.ErrInvalid) || exitCode(err) != exitCaissonError {
			t.Errorf("%v: %v, want an invalid-input error (exit 125)", args, err)
		}
	}
	if _, err := os.Stat(plot); !os.IsNotExist(err) {
		t.Errorf("a failed run left a plot behind: %v", err)
	}
	var located *scenario.Error
	if _, err := runCaisson(t, "sim", bad); !errors.As(err, &located) || located.File != bad || located.Line == 0 {
		t.Errorf("error does not name the file and line: %v", err)
	}
	if _, err := runCaisson(t, "sim", filepath.Join(dir, "missing.yaml")); err == nil {
		t.Error("a missing scenario file is not an error")
	}
	if _, err := runCaisson(t, "sim", "../../examples/sim-small.yaml", "--cpuprofile", filepath.Join(dir, "no", "cpu.prof")); err == nil || !strings.Contains(err.Error(), "--cpuprofile") {
		t.Errorf("a profile that cannot be written: %v", err)
	}
}

// TestSimOutputPaths points --plot and --cpuprofile at each kind of node a
// user may name: a regular file is replaced, a link written through (and
// kept), a device or FIFO written through (and kept), a directory or
// socket refused before the run and left as it was.
func TestSimOutputPaths(t *testing.T) {
	clearSettingsEnv(t)
	for _, flag := range []string{"--plot", "--cpuprofile"} {
		for _, tc := range []struct {
			name   string
			root   bool // mknod
			setup  func(t *testing.T, dir string) (path string, read func() []byte)
			refuse bool
			want   fs.FileMode // the type of the node afterwards
		}{
			{name: "regular file", setup: func(t *testing.T, dir string) (string, func() []byte) {
				p := filepath.Join(dir, "out")
				if err := os.WriteFile(p, []byte("old"), 0o644); err != nil {
					t.Fatal(err)
				}
				return p, readBack(p)
			}},
			{name: "symlink to a file", setup: func(t *testing.T, dir string) (string, func() []byte) {
				p := filepath.Join(dir, "out")
				if err := os.Symlink("target", p); err != nil {
					t.Fatal(err)
				}
				return p, readBack(filepath.Join(dir, "target"))
			}, want: fs.ModeSymlink},
			{name: "FIFO with a reader", setup: func(t *testing.T, dir string) (string, func() []byte) {
				p := filepath.Join(dir, "out")
				if err := unix.Mkfifo(p, 0o600); err != nil {
					t.Fatal(err)
				}
				// A reader, and a writer of the test's own that keeps the
				// reader from seeing the end until the run is over: then
				// the reader has what caisson wrote, or nothing where
				// caisson did not open the FIFO.
				r, err := os.OpenFile(p, os.O_RDONLY|unix.O_NONBLOCK, 0)
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { r.Close() })
				w, err := os.OpenFile(p, os.O_WRONLY|unix.O_NONBLOCK, 0)
				if err != nil {
					t.Fatal(err)
				}
				got := make(chan []byte, 1)
				go func() {
					b, _ := io.ReadAll(r)
					got <- b
				}()
				return p, func() []byte {
					w.Close()
					return <-got
				}
			}, want: fs.ModeNamedPipe},
			{name: "character device like /dev/null", root: true, setup: func(t *testing.T, dir string) (string, func() []byte) {
				p := filepath.Join(dir, "out")
				if err := unix.Mknod(p, unix.S_IFCHR|0o666, int(unix.Mkdev(1, 3))); err != nil {
					t.Fatal(err)
				}
				return p, nil
			}, want: fs.ModeDevice | fs.ModeCharDevice},
			{name: "directory", setup: func(t *testing.T, dir string) (string, func() []byte) {
				p := filepath.Join(dir, "out")
				if err := os.Mkdir(p, 0o755); err != nil {
					t.Fatal(err)
				}
				return p, nil
			}, refuse: true, want: fs.ModeDir},
			{name: "socket", setup: func(t *testing.T, dir string) (string, func() []byte) {
				return testutil.Socket(t, filepath.Join(dir, "out")), nil
			}, refuse: true, want: fs.ModeSocket},
		} {
			t.Run(flag+" "+tc.name, func(t *testing.T) {
				if tc.root {
					testutil.RequiresRoot(t)
				}
				path, read := tc.setup(t, t.TempDir())
				_, err := runCaisson(t, "sim", "../../examples/sim-small.yaml", "--format", "json", flag, path)
				if tc.refuse != errors.Is(err, api.ErrInvalid) || !tc.refuse && err != nil {
					t.Fatalf("%v; want refused: %v", err, tc.refuse)
				}
				fi, err := os.Lstat(path)
				if err != nil {
					t.Fatal(err)
				}
				if diff := cmp.Diff(tc.want, fi.Mode().Type()); diff != "" {
					t.Errorf("%s afterwards (-want +got):\n%s", path, diff)
				}
				if read == nil {
					return
				}
				// An SVG, or a gzipped protocol buffer.
				if b := read(); !bytes.Contains(b, []byte("<svg")) && !bytes.HasPrefix(b, []byte{0x1f, 0x8b}) {
					t.Errorf("wrote %.20q, want a plot or a profile", b)
				}
			})
		}
	}
}

func readBack(path string) func() []byte {
	return func() []byte {
		b, _ := os.ReadFile(path)
		return b
	}
}

// TestSimOutputsMadeOnlyWhenWritten looks beside --plot and --cpuprofile
// while the replay runs: nothing is made there (no temporary file that a
// Ctrl-C would leave behind) until the replay is over, and a replay that
// ends in an error leaves the directory as it was.
func TestSimOutputsMadeOnlyWhenWritten(t *testing.T) {
	clearSettingsEnv(t)
	t.Cleanup(func() { replay = sim.Run })
	for _, flag := range []string{"--plot", "--cpuprofile"} {
		for _, tc := range []struct {
			name  string
			setup func(t *testing.T, dir string) string
		}{
			{"nothing there", func(t *testing.T, dir string) string { return filepath.Join(dir, "out") }},
			{"a regular file", func(t *testing.T, dir string) string {
				p := filepath.Join(dir, "out")
				writeTestFile(t, p, "old")
				return p
			}},
			{"a symlink to a file", func(t *testing.T, dir string) string {
				writeTestFile(t, filepath.Join(dir, "target"), "old")
				p := filepath.Join(dir, "out")
				if err := os.Symlink("target", p); err != nil {
					t.Fatal(err)
				}
				return p
			}},
			{"a dangling symlink", func(t *testing.T, dir string) string {
				p := filepath.Join(dir, "out")
				if err := os.Symlink("target", p); err != nil {
					t.Fatal(err)
				}
				return p
			}},
		} {
			for _, fail := range []bool{false, true} {
				t.Run(fmt.Sprintf("%s %s, replay fails: %v", flag, tc.name, fail), func(t *testing.T) {
					dir := t.TempDir()
					path := tc.setup(t, dir)
					before := dirContent(t, dir)
					var during map[string]string
					replay = func(ctx context.Context, sc *scenario.Scenario, opts sim.Options) (*sim.Report, error) {
						during = dirContent(t, dir)
						if fail {
							return nil, context.Canceled
						}
						return sim.Run(ctx, sc, opts)
					}
					_, err := runCaisson(t, "sim", "../../examples/sim-small.yaml", "--format", "json", flag, path)
					if fail != (err != nil) {
						t.Fatalf("sim: %v", err)
					}
					if diff := cmp.Diff(before, during); diff != "" {
						t.Errorf("beside the output during the replay (-before +during):\n%s", diff)
					}
					if after := dirContent(t, dir); fail {
						if diff := cmp.Diff(before, after); diff != "" {
							t.Errorf("after a failed replay (-before +after):\n%s", diff)
						}
					} else if b, err := os.ReadFile(path); err != nil || string(b) == "old" {
						t.Errorf("%s not written: %q, %v", path, b, err)
					}
				})
			}
		}
	}
}

// dirContent maps the names in dir to their content, or their link.
func dirContent(t *testing.T, dir string) map[string]string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]string{}
	for _, e := range entries {
		p := filepath.Join(dir, e.Name())
		if l, err := os.Readlink(p); err == nil {
			m[e.Name()] = "-> " + l
			continue
		}
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		m[e.Name()] = string(b)
	}
	return m
}

func writeTestFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}
