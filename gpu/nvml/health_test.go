//go:build cgo && linux

package nvml

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	gonvml "github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/server"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/caisson/caisson/api"
	"github.com/caisson/caisson/gpu"
)

// uuids are the UUIDs of a simulated machine, in index order.
func uuids(t *testing.T, backend string) []string {
	t.Helper()
	inv, err := Discover(backend, "")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, d := range inv.Devices {
		out = append(out, d.UUID)
	}
	return out
}

// appendEvents appends lines to a simulation directory's events file.
func appendEvents(t *testing.T, dir string, lines ...string) {
	t.Helper()
	f, err := os.OpenFile(filepath.Join(dir, SimEventsFile), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(strings.Join(lines, "")); err != nil {
		t.Fatal(err)
	}
}

func eventLine(t *testing.T, e gpu.Event) string {
	t.Helper()
	b, err := json.Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	return string(b) + "\n"
}

func writeFaults(t *testing.T, dir string, faults map[string]string) {
	t.Helper()
	b, err := json.Marshal(faults)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, SimFaultsFile), b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestSimulatedUUIDs: every process sees the same machine, so that a UUID
// from `caisson-nvml inventory` works in a later `probe`.
func TestSimulatedUUIDs(t *testing.T) {
	for _, backend := range []string{BackendDGXA100, BackendDGXH100, BackendDGXB200} {
		a, b := uuids(t, backend), uuids(t, backend)
		if diff := cmp.Diff(a, b); diff != "" || len(a) != 8 {
			t.Errorf("%s: UUIDs differ between two simulations (-first +second):\n%s", backend, diff)
		}
	}
	if a, h := uuids(t, BackendDGXA100), uuids(t, BackendDGXH100); a[0] == h[0] {
		t.Errorf("dgxa100 and dgxh100 share UUID %s", a[0])
	}
}

func TestStatsSimulated(t *testing.T) {
	for _, tc := range []struct {
		backend string
		memory  uint64
	}{
		{BackendDGXA100, 40 << 30},
		{BackendDGXH100, 80 << 30},
		{BackendDGXB200, 180 << 30},
	} {
		t.Run(tc.backend, func(t *testing.T) {
			ids := uuids(t, tc.backend)
			st, err := Stats(tc.backend, t.TempDir(), nil)
			if err != nil {
				t.Fatal(err)
			}
			var want []gpu.DeviceStats
			for i, id := range ids {
				want = append(want, gpu.DeviceStats{
					UUID: id, Index: i,
					UtilizationPercent: ptr[uint32](0), MemoryUtilizationPercent: ptr[uint32](0),
					MemoryUsedBytes: ptr[uint64](0), MemoryTotalBytes: ptr(tc.memory),
					PowerMilliwatts: ptr[uint32](60000), TemperatureCelsius: ptr[uint32](35),
					ECCCorrected: ptr[uint64](0), ECCUncorrected: ptr[uint64](0),
				})
			}
			if diff := cmp.Diff(want, st.Devices); diff != "" {
				t.Errorf("stats (-want +got):\n%s", diff)
			}

			// Some GPUs, in the order asked.
			st, err = Stats(tc.backend, "", []string{ids[5], ids[2]})
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff([]gpu.DeviceStats{want[5], want[2]}, st.Devices); diff != "" {
				t.Errorf("stats of two GPUs (-want +got):\n%s", diff)
			}

			if _, err := Stats(tc.backend, "", []string{ids[0], "GPU-nope"}); !errors.Is(err, api.ErrNotFound) || !strings.Contains(err.Error(), "GPU-nope") {
				t.Errorf("unknown UUID: %v, want api.ErrNotFound naming it", err)
			}
		})
	}
}

// TestStatsInjectedECC: each injected "dbe" line of a GPU is one
// uncorrected ECC error in its stats; malformed lines and other GPUs'
// events do not count.
func TestStatsInjectedECC(t *testing.T) {
	ids := uuids(t, BackendDGXA100)
	dir := t.TempDir()
	appendEvents(t, dir,
		eventLine(t, gpu.Event{UUID: ids[1], Type: gpu.EventDBE}),
		"{not json\n",
		eventLine(t, gpu.Event{UUID: ids[1], Type: gpu.EventXID, XID: 48}),
		eventLine(t, gpu.Event{UUID: ids[3], Type: gpu.EventDBE}),
		eventLine(t, gpu.Event{UUID: ids[1], Type: gpu.EventDBE}),
	)
	st, err := Stats(BackendDGXA100, dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]uint64{}
	for _, d := range st.Devices {
		if d.ECCUncorrected == nil || d.ECCCorrected == nil || *d.ECCCorrected != 0 {
			t.Fatalf("%s: ECC counters %v %v", d.UUID, d.ECCCorrected, d.ECCUncorrected)
		}
		if *d.ECCUncorrected != 0 {
			got[d.UUID] = *d.ECCUncorrected
		}
	}
	if diff := cmp.Diff(map[string]uint64{ids[1]: 2, ids[3]: 1}, got); diff != "" {
		t.Errorf("uncorrected ECC errors (-want +got):\n%s", diff)
	}
}

// TestStatsUnsupported: counters a GPU does not support are left out, not
// an error.
func TestStatsUnsupported(t *testing.T) {
	srv, err := MockWith(BackendDGXA100, "")
	if err != nil {
		t.Fatal(err)
	}
	d := srv.Devices[0].(*server.Device)
	d.GetPowerUsageFunc = nil // a mock's unset method panics: not supported
	d.GetTotalEccErrorsFunc = func(gonvml.MemoryErrorType, gonvml.EccCounterType) (uint64, gonvml.Return) {
		return 0, gonvml.ERROR_NOT_SUPPORTED
	}
	st, err := stats(srv, []string{d.UUID})
	if err != nil {
		t.Fatal(err)
	}
	got := st.Devices[0]
	if got.PowerMilliwatts != nil || got.ECCCorrected != nil || got.ECCUncorrected != nil || got.TemperatureCelsius == nil {
		t.Errorf("unsupported counters: %+v", got)
	}
}

func TestProbe(t *testing.T) {
	ids := uuids(t, BackendDGXH100)
	dir := t.TempDir()
	writeFaults(t, dir, map[string]string{ids[2]: "fell off the bus"})
	for _, tc := range []struct {
		name, simDir, uuid string
		ok                 bool
		reason             []string // parts of the reason
	}{
		{"healthy", dir, ids[0], true, nil},
		{"no sim dir", "", ids[2], true, nil},
		{"faulted", dir, ids[2], false, []string{"memory info", "fell off the bus"}},
		{"unknown", dir, "GPU-00000000-0000-0000-0000-000000000000", false, []string{ReasonNotFound}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := Probe(BackendDGXH100, tc.simDir, tc.uuid)
			if err != nil {
				t.Fatal(err)
			}
			if p.UUID != tc.uuid || p.OK != tc.ok || (p.OK && p.Reason != "") {
				t.Errorf("probe %s: %+v, want ok %v", tc.uuid, p, tc.ok)
			}
			for _, part := range tc.reason {
				if !strings.Contains(p.Reason, part) {
					t.Errorf("reason %q lacks %q", p.Reason, part)
				}
			}
		})
	}
}

// TestProbeMemoryHealth: pending retired pages and failed row remapping
// make a GPU unfit; not supporting them does not.
func TestProbeMemoryHealth(t *testing.T) {
	for _, tc := range []struct {
		name    string
		retired func() (gonvml.EnableState, gonvml.Return)
		rows    func() (int, int, bool, bool, gonvml.Return)
		ok      bool
	}{
		{"healthy", nil, nil, true},
		{"retired pages pending", func() (gonvml.EnableState, gonvml.Return) { return gonvml.FEATURE_ENABLED, gonvml.SUCCESS }, nil, false},
		{"row remapping failed", nil, func() (int, int, bool, bool, gonvml.Return) { return 0, 1, false, true, gonvml.SUCCESS }, false},
		{"row remapping pending", nil, func() (int, int, bool, bool, gonvml.Return) { return 1, 0, true, false, gonvml.SUCCESS }, true},
		{"neither supported",
			func() (gonvml.EnableState, gonvml.Return) { return 0, gonvml.ERROR_NOT_SUPPORTED },
			func() (int, int, bool, bool, gonvml.Return) { return 0, 0, false, false, gonvml.ERROR_NOT_SUPPORTED }, true},
		{"retired pages fail", func() (gonvml.EnableState, gonvml.Return) { return 0, gonvml.ERROR_GPU_IS_LOST }, nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv, err := MockWith(BackendDGXA100, "")
			if err != nil {
				t.Fatal(err)
			}
			d := srv.Devices[4].(*server.Device)
			if tc.retired != nil {
				d.GetRetiredPagesPendingStatusFunc = tc.retired
			}
			if tc.rows != nil {
				d.GetRemappedRowsFunc = tc.rows
			}
			p, err := probe(srv, d.UUID)
			if err != nil {
				t.Fatal(err)
			}
			if p.OK != tc.ok || p.OK == (p.Reason != "") {
				t.Errorf("%+v, want ok %v", p, tc.ok)
			}
		})
	}
}

// TestNoNVML: without the driver's library, Stats, Probe and Watch fail
// with api.ErrUnavailable and make no NVML call after the failed Init (one
// would abort this test binary).
func TestNoNVML(t *testing.T) {
	lib := func() gonvml.Interface { return gonvml.New(gonvml.WithLibraryPath("/nonexistent")) }
	if _, err := stats(lib(), nil); !errors.Is(err, api.ErrUnavailable) {
		t.Errorf("stats: %v, want api.ErrUnavailable", err)
	}
	if _, err := probe(lib(), "GPU-x"); !errors.Is(err, api.ErrUnavailable) {
		t.Errorf("probe: %v, want api.ErrUnavailable", err)
	}
	called := false
	if err := watch(context.Background(), lib(), func(gpu.Event) { called = true }); !errors.Is(err, api.ErrUnavailable) || called {
		t.Errorf("watch: %v (events reported: %v), want api.ErrUnavailable", err, called)
	}
	inv, err := discover(lib(), BackendNVML, false)
	if err != nil || len(inv.Devices) != 0 || inv.Reason == "" {
		t.Errorf("discover: %+v, %v; want no devices and a reason", inv, err)
	}
}

// watchSim starts Watch on a simulated DGX A100 whose GPU 7 is faulted; it
// returns the events channel once the watch has started (the faulted GPU's
// "unwatched" event, then "ready": later lines are new),
// and a function that stops it and returns Watch's error.
func watchSim(t *testing.T, dir string) (<-chan gpu.Event, func() error) {
	t.Helper()
	ids := uuids(t, BackendDGXA100)
	writeFaults(t, dir, map[string]string{ids[7]: "gone"})
	ctx, cancel := context.WithCancel(context.Background())
	events := make(chan gpu.Event, 16)
	done := make(chan error, 1)
	go func() { done <- Watch(ctx, BackendDGXA100, dir, func(e gpu.Event) { events <- e }) }()
	stop := func() error {
		cancel()
		return <-done
	}
	select {
	case e := <-events:
		if e.Type != gpu.EventUnwatched || e.UUID != ids[7] || e.Reason == "" {
			t.Errorf("first event %+v, want GPU 7 unwatched", e)
		}
	case err := <-done:
		t.Fatalf("watch returned before its first event: %v", err)
	}
	if e := <-events; e.Type != gpu.EventReady {
		t.Errorf("second event %+v, want ready", e)
	}
	return events, stop
}

func TestWatchSimulated(t *testing.T) {
	ids := uuids(t, BackendDGXA100)
	dir := t.TempDir()
	// Lines from before the watch are old news.
	appendEvents(t, dir, eventLine(t, gpu.Event{UUID: ids[0], Type: gpu.EventXID, XID: 31}))
	events, stop := watchSim(t, dir)
	appendEvents(t, dir,
		eventLine(t, gpu.Event{UUID: ids[1], Type: gpu.EventXID, XID: 79}),
		"{not json\n",
		"\n",
		eventLine(t, gpu.Event{UUID: "GPU-unknown", Type: gpu.EventXID, XID: 79}),
		eventLine(t, gpu.Event{UUID: ids[7], Type: gpu.EventXID, XID: 79}), // unwatched
		eventLine(t, gpu.Event{UUID: ids[2], Type: "thermal"}),
		eventLine(t, gpu.Event{UUID: ids[2], Type: gpu.EventDBE}),
		`{"uuid":"`+ids[3]+`","type":"xid",`, // the writer is not done
	)
	appendEvents(t, dir,
		`"xid":13}`+"\n",
		eventLine(t, gpu.Event{UUID: ids[0], Type: gpu.EventXID, XID: 43}),
	)
	want := []gpu.Event{
		{UUID: ids[1], Type: gpu.EventXID, XID: 79},
		{UUID: ids[2], Type: gpu.EventDBE},
		{UUID: ids[3], Type: gpu.EventXID, XID: 13}, // application-caused XIDs too
		{UUID: ids[0], Type: gpu.EventXID, XID: 43},
	}
	var got []gpu.Event
	for range want {
		e := <-events
		if e.Time.IsZero() {
			t.Errorf("event without a time: %+v", e)
		}
		got = append(got, e)
	}
	if err := stop(); err != nil {
		t.Errorf("watch after cancel: %v, want nil", err)
	}
	for len(events) > 0 { // anything more is one event too many
		got = append(got, <-events)
	}
	if diff := cmp.Diff(want, got, cmpopts.IgnoreFields(gpu.Event{}, "Time")); diff != "" {
		t.Errorf("events (-want +got):\n%s", diff)
	}
}

// TestWatchUnsupported: GPUs that cannot be watched are reported, and the
// watch goes on for the others.
func TestWatchUnsupported(t *testing.T) {
	srv, err := MockWith(BackendDGXA100, "")
	if err != nil {
		t.Fatal(err)
	}
	d0, d1 := srv.Devices[0].(*server.Device), srv.Devices[1].(*server.Device)
	d0.GetSupportedEventTypesFunc = func() (uint64, gonvml.Return) { return gonvml.EventTypePState, gonvml.SUCCESS }
	d1.RegisterEventsFunc = func(uint64, gonvml.EventSet) gonvml.Return { return gonvml.ERROR_NO_PERMISSION }
	ctx, cancel := context.WithCancel(context.Background())
	var got []gpu.Event
	err = watch(ctx, srv, func(e gpu.Event) {
		got = append(got, e)
		if len(got) == 2 {
			cancel()
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range []string{d0.UUID, d1.UUID} {
		if got[i].Type != gpu.EventUnwatched || got[i].UUID != want || got[i].Reason == "" {
			t.Errorf("event %d: %+v, want %s unwatched", i, got[i], want)
		}
	}
}

// TestWatchWaitFails: an event set that stops answering ends the watch
// with an error, after freeing the set.
func TestWatchWaitFails(t *testing.T) {
	srv, err := MockWith(BackendDGXA100, "")
	if err != nil {
		t.Fatal(err)
	}
	create := srv.EventSetCreateFunc
	var set *simEventSet
	srv.EventSetCreateFunc = func() (gonvml.EventSet, gonvml.Return) {
		s, ret := create()
		set = s.(*simEventSet)
		set.WaitFunc = func(uint32) (gonvml.EventData, gonvml.Return) { return gonvml.EventData{}, gonvml.ERROR_GPU_IS_LOST }
		return set, ret
	}
	if err := watch(context.Background(), srv, func(gpu.Event) {}); !errors.Is(err, api.ErrUnavailable) {
		t.Errorf("watch: %v, want api.ErrUnavailable", err)
	}
	if len(set.FreeCalls()) != 1 {
		t.Errorf("event set freed %d times, want once", len(set.FreeCalls()))
	}
}

func TestBadFaultsFile(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, SimFaultsFile), []byte(`["GPU-1"]`), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Probe(BackendDGXA100, dir, "GPU-1"); !errors.Is(err, api.ErrInvalid) {
		t.Errorf("faults file not an object: %v, want api.ErrInvalid", err)
	}
}
