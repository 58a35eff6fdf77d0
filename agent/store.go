package agent

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/caisson/caisson/api"
	"github.com/caisson/caisson/internal/atomicfile"
)

// Files and directories under Config.StateDir.
const (
	idFile     = "agent-id"
	tasksDir   = "tasks"
	updatesDir = "updates"
	// badSuffix marks a file that could not be read: set aside, kept for
	// a person to look at, never read again.
	badSuffix = ".unreadable"
)

// recordVersion is the version of the task records and queued updates
// this code writes; it refuses newer ones.
const recordVersion = 1

// taskRecord is what the agent keeps of a task on disk, from before its
// launch until its terminal update is queued and its container removed.
type taskRecord struct {
	Version int            `json:"version"`
	Launch  api.TaskLaunch `json:"launch"`
	// State is api.TaskStaging until the container runs, then
	// api.TaskRunning.
	State     string `json:"state"`
	Container string `json:"container,omitempty"`
	// Kill is the agent's kill, once asked: the task ends as killed, for
	// its reason, and gets SIGKILL at its deadline.
	Kill *killRecord `json:"kill,omitempty"`
	// Terminal is the task's last update, written here before it is
	// queued, so a crash between the two queues it again with the same
	// UUID (the master applies an update once).
	Terminal *api.StatusUpdate `json:"terminal,omitempty"`
}

type killRecord struct {
	Reason   string    `json:"reason"`
	Deadline time.Time `json:"deadline"`
}

// store is the agent's state dir: its ID and its task records.
type store struct{ dir string }

func newStore(dir string) (*store, error) {
	for _, d := range []string{dir, filepath.Join(dir, tasksDir), filepath.Join(dir, updatesDir)} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("agent state: %w", err)
		}
	}
	return &store{dir: dir}, nil
}

// loadID returns the agent's ID, empty before the master first gave one.
func (s *store) loadID() (string, error) {
	b, err := os.ReadFile(filepath.Join(s.dir, idFile))
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("agent state: %w", err)
	}
	return strings.TrimSpace(string(b)), nil
}

func (s *store) saveID(id string) error {
	if err := atomicfile.Write(filepath.Join(s.dir, idFile), []byte(id+"\n"), 0o600, true); err != nil {
		return fmt.Errorf("agent state: %w", err)
	}
	return nil
}

// escapeID is an ID that may hold slashes ("S/G/0") as a part of a file
// name: escaped, and shortened with a hash when it would be too long.
func escapeID(id string) string {
	esc := url.PathEscape(id)
	if len(esc) > 160 {
		sum := sha256.Sum256([]byte(id))
		esc = esc[:100] + "-" + hex.EncodeToString(sum[:16])
	}
	return esc
}

// fileName is the name of a task's record.
func fileName(id string) string { return "t-" + escapeID(id) + ".json" }

func (s *store) taskPath(id string) string {
	return filepath.Join(s.dir, tasksDir, fileName(id))
}

func (s *store) saveTask(r *taskRecord) error {
	r.Version = recordVersion
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	if err := atomicfile.Write(s.taskPath(r.Launch.Task), b, 0o600, true); err != nil {
		return fmt.Errorf("task %s: %w", r.Launch.Task, err)
	}
	return nil
}

func (s *store) deleteTask(id string) error {
	if err := os.Remove(s.taskPath(id)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("task %s: %w", id, err)
	}
	return nil
}

// loadTasks reads every task record. One that cannot be read is set
// aside and reported in bad; the others load.
func (s *store) loadTasks() (recs []*taskRecord, bad []error, err error) {
	dir := filepath.Join(s.dir, tasksDir)
	err = readJSONDir(dir, func(name string, b []byte) error {
		var r taskRecord
		if err := decodeRecord(b, &r, &r.Version); err != nil {
			return err
		}
		if r.Launch.Task == "" {
			return fmt.Errorf("no task ID: %w", api.ErrUnreadable)
		}
		recs = append(recs, &r)
		return nil
	}, func(e error) { bad = append(bad, e) })
	return recs, bad, err
}

// decodeRecord reads a JSON record and refuses a version this code does
// not know.
func decodeRecord(b []byte, v any, version *int) error {
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("%w: %w", api.ErrUnreadable, err)
	}
	if *version > recordVersion {
		return fmt.Errorf("version %d, newer than this agent's %d: %w", *version, recordVersion, api.ErrUnreadable)
	}
	return nil
}

// readJSONDir calls load on each .json file of dir in name order. A file
// load refuses is renamed with badSuffix and reported to bad.
func readJSONDir(dir string, load func(name string, b []byte) error, bad func(error)) error {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("agent state: %w", err)
	}
	for _, e := range ents { // sorted by name
		name := e.Name()
		if !e.Type().IsRegular() || !strings.HasSuffix(name, ".json") || strings.HasPrefix(name, ".") {
			continue
		}
		path := filepath.Join(dir, name)
		b, err := os.ReadFile(path)
		if err == nil {
			err = load(name, b)
		}
		if err != nil {
			bad(fmt.Errorf("%s: %w", path, err))
			_ = os.Rename(path, path+badSuffix)
		}
	}
	return nil
}

// newUUID is a random (version 4) UUID.
func newUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // never fails on Linux
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

// queue is the persisted queue of status updates: one file per update
// under updates/, named by a sequence number, so they load in the order
// they were queued. An update stays until the master acknowledges its
// UUID.
type queue struct {
	dir string

	mu    sync.Mutex
	next  uint64
	items []queued
	// acked counts the updates acknowledged since the queue was loaded.
	acked   uint64
	changed chan struct{} // closed and replaced on every change
	// added has a value when something was queued since the sender last
	// looked.
	added chan struct{}
}

type queued struct {
	file string
	u    api.StatusUpdate
}

// queuedUpdate is an update's file.
type queuedUpdate struct {
	Version int              `json:"version"`
	Update  api.StatusUpdate `json:"update"`
}

// loadQueue reads the queue in dir; an update that cannot be read is set
// aside and reported in bad.
func loadQueue(dir string) (q *queue, bad []error, err error) {
	q = &queue{dir: dir, changed: make(chan struct{}), added: make(chan struct{}, 1)}
	err = readJSONDir(dir, func(name string, b []byte) error {
		n, err := strconv.ParseUint(strings.TrimSuffix(name, ".json"), 10, 64)
		if err != nil {
			return fmt.Errorf("not a queued update's name: %w", api.ErrUnreadable)
		}
		var f queuedUpdate
		if err := decodeRecord(b, &f, &f.Version); err != nil {
			return err
		}
		if f.Update.UUID == "" || f.Update.Task == "" {
			return fmt.Errorf("an update without UUID or task: %w", api.ErrUnreadable)
		}
		q.items = append(q.items, queued{file: filepath.Join(dir, name), u: f.Update})
		q.next = max(q.next, n+1)
		return nil
	}, func(e error) { bad = append(bad, e) })
	return q, bad, err
}

// push persists u at the end of the queue.
func (q *queue) push(u api.StatusUpdate) error {
	b, err := json.Marshal(queuedUpdate{Version: recordVersion, Update: u})
	if err != nil {
		return err
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	file := filepath.Join(q.dir, fmt.Sprintf("%020d.json", q.next))
	if err := atomicfile.Write(file, b, 0o600, true); err != nil {
		return fmt.Errorf("queue the %s update of task %s: %w", u.State, u.Task, err)
	}
	q.next++
	q.items = append(q.items, queued{file: file, u: u})
	q.notifyLocked()
	select {
	case q.added <- struct{}{}:
	default:
	}
	return nil
}

// has reports whether the update with this UUID is queued.
func (q *queue) has(uuid string) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return slices.ContainsFunc(q.items, func(it queued) bool { return it.u.UUID == uuid })
}

// hasTask reports whether an update of this task is queued.
func (q *queue) hasTask(task string) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return slices.ContainsFunc(q.items, func(it queued) bool { return it.u.Task == task })
}

// pending returns the first n updates, oldest first.
func (q *queue) pending(n int) []api.StatusUpdate {
	q.mu.Lock()
	defer q.mu.Unlock()
	out := make([]api.StatusUpdate, 0, min(n, len(q.items)))
	for _, it := range q.items[:min(n, len(q.items))] {
		out = append(out, it.u)
	}
	return out
}

// counts are how many updates are queued, and how many were
// acknowledged since the queue was loaded.
func (q *queue) counts() (queued int, acked uint64) {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.items), q.acked
}

// all returns every queued update, oldest first.
func (q *queue) all() []api.StatusUpdate {
	q.mu.Lock()
	n := len(q.items)
	q.mu.Unlock()
	return q.pending(n)
}

// ack deletes the acknowledged updates and returns how many there were.
// An update whose file cannot be deleted stays queued, and is sent again.
func (q *queue) ack(uuids []string) (int, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	acked := make(map[string]bool, len(uuids))
	for _, u := range uuids {
		acked[u] = true
	}
	var errs []error
	n := 0
	q.items = slices.DeleteFunc(q.items, func(it queued) bool {
		if !acked[it.u.UUID] {
			return false
		}
		if err := os.Remove(it.file); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
			return false
		}
		n++
		return true
	})
	if n > 0 {
		q.acked += uint64(n)
		q.notifyLocked()
	}
	return n, errors.Join(errs...)
}

func (q *queue) notifyLocked() {
	close(q.changed)
	q.changed = make(chan struct{})
}

// watch returns the number of queued updates and a channel closed at the
// next change.
func (q *queue) watch() (int, <-chan struct{}) {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.items), q.changed
}
