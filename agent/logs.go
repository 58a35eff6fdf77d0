package agent

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"github.com/caisson/caisson/api"
	"github.com/caisson/caisson/internal/atomicfile"
	"github.com/caisson/caisson/internal/tailbuf"
)

// The bounds of the kept logs when the configuration gives none.
const (
	// DefaultKeptLogs is how many ended tasks' logs an agent keeps.
	DefaultKeptLogs = 1000
	// DefaultMaxKeptLog is the most bytes of output kept of one task.
	DefaultMaxKeptLog = 1 << 20
)

// logsDir holds the kept logs, under Config.StateDir.
const logsDir = "logs"

// keptLogs is the output of ended tasks, kept after their containers are
// removed: one file per task, logs/<seq>-<escaped task ID>.log, holding
// the bytes the task's container gave as its log (stdout and stderr as
// the agent's API serves them). The sequence number says which was kept
// first: beyond count, the oldest go. A log longer than size bytes keeps
// its tail (see kept).
//
// A log is written to a temporary file and renamed into place, so a file
// is whole or absent; a log kept again (after a crash between keeping it
// and removing the container) replaces the one before, and when a crash
// leaves both, the next start keeps the newer.
type keptLogs struct {
	dir   string
	count int
	size  int

	mu   sync.Mutex
	next uint64
	// files are the kept logs by escaped task ID.
	files map[string]keptFile
}

type keptFile struct {
	seq  uint64
	name string
}

// openKeptLogs reads the kept logs in dir (made if missing), deletes what
// an interrupted keep left, and drops the oldest beyond count. What it
// could not delete is reported in bad.
func openKeptLogs(dir string, count, size int) (k *keptLogs, bad []error, err error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, nil, fmt.Errorf("agent state: %w", err)
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, nil, fmt.Errorf("agent state: %w", err)
	}
	k = &keptLogs{dir: dir, count: count, size: size, files: map[string]keptFile{}}
	var drop []string
	for _, e := range ents { // by name: by sequence number
		name := e.Name()
		if strings.HasPrefix(name, ".") {
			drop = append(drop, name) // a temporary file of a keep cut short
			continue
		}
		seq, esc, ok := parseKeptName(name)
		if !ok || !e.Type().IsRegular() {
			continue
		}
		if old, ok := k.files[esc]; ok { // a crash between a keep and its cleanup: the newer stays
			if old.seq > seq {
				drop = append(drop, name)
				continue
			}
			drop = append(drop, old.name)
		}
		k.files[esc] = keptFile{seq: seq, name: name}
		k.next = max(k.next, seq+1)
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	return k, k.removeLocked(append(drop, k.overflowLocked()...)), nil
}

// parseKeptName splits the name of a kept log into its sequence number
// and escaped task ID.
func parseKeptName(name string) (seq uint64, esc string, ok bool) {
	num, rest, ok := strings.Cut(strings.TrimSuffix(name, ".log"), "-")
	if !ok || rest == "" || !strings.HasSuffix(name, ".log") {
		return 0, "", false
	}
	seq, err := strconv.ParseUint(num, 10, 64)
	return seq, rest, err == nil
}

// keep stores what write writes as task's log, in place of the one kept
// before, and drops the oldest logs beyond the bound.
func (k *keptLogs) keep(task string, write func(w io.Writer) error) error {
	tail := &tailbuf.Buffer{Max: k.size}
	if err := write(tail); err != nil {
		return err
	}
	esc := escapeID(task)
	k.mu.Lock()
	seq := k.next
	k.next++
	k.mu.Unlock()
	name := fmt.Sprintf("%020d-%s.log", seq, esc)
	if err := atomicfile.Write(filepath.Join(k.dir, name), kept(tail), 0o600, true); err != nil {
		return fmt.Errorf("keep the log of task %s: %w", task, err)
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	var drop []string
	if old, ok := k.files[esc]; ok && old.seq < seq {
		drop = append(drop, old.name)
	}
	k.files[esc] = keptFile{seq: seq, name: name}
	return errors.Join(k.removeLocked(append(drop, k.overflowLocked()...))...)
}

// overflowLocked takes the oldest logs beyond the bound out of the index
// and returns their names.
func (k *keptLogs) overflowLocked() []string {
	var names []string
	for len(k.files) > k.count {
		var oldest string
		for esc, f := range k.files {
			if oldest == "" || f.seq < k.files[oldest].seq {
				oldest = esc
			}
		}
		names = append(names, k.files[oldest].name)
		delete(k.files, oldest)
	}
	return names
}

// removeLocked deletes the named files; it returns what it could not.
func (k *keptLogs) removeLocked(names []string) []error {
	var errs []error
	for _, n := range names {
		if err := os.Remove(filepath.Join(k.dir, n)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, fmt.Errorf("kept log: %w", err))
		}
	}
	return errs
}

// open opens task's kept log; an error wraps api.ErrNotFound when none is
// kept.
func (k *keptLogs) open(task string) (*os.File, error) {
	k.mu.Lock()
	defer k.mu.Unlock() // a log being read is not deleted before it is open
	f, ok := k.files[escapeID(task)]
	if !ok {
		return nil, fmt.Errorf("task %s: no log kept: %w", task, api.ErrNotFound)
	}
	file, err := os.Open(filepath.Join(k.dir, f.name))
	if err != nil {
		return nil, fmt.Errorf("task %s: kept log: %w", task, err)
	}
	return file, nil
}

// kept is what is kept of all that was written to b: everything when it
// fits in its bound. Otherwise its last bytes, from the start of the first
// whole line in them (all of them when they hold no whole line), after a
// first line that says how many bytes were dropped.
func kept(b *tailbuf.Buffer) []byte {
	out := b.Bytes()
	dropped, last := b.Dropped()
	if dropped == 0 {
		return out
	}
	if last != '\n' {
		if i := bytes.IndexByte(out, '\n'); i >= 0 && i < len(out)-1 {
			out, dropped = out[i+1:], dropped+i+1
		}
	}
	head := fmt.Appendf(nil, truncatedLine, dropped, len(out))
	return append(head, out...)
}

// truncatedLine is the first line of a log that was cut: the bytes
// dropped, the bytes kept.
const truncatedLine = "[caisson: output truncated: the first %d bytes dropped, the last %d kept]\n"
