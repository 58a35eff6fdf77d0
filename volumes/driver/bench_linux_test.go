package driver

import (
	"fmt"
	"testing"
	"time"

	"github.com/docker/docker/pkg/plugins"
	"github.com/docker/docker/volume/drivers"

	"github.com/caisson/caisson/internal/testutil"
)

// BenchmarkMountUnmount measures Mount+Unmount of one volume of each backend
// through the plugin socket with dockerd's own client, as dockerd does for
// every container start and stop. The dir backend (no mount of its own) is
// the baseline; the others report their ratio to it.
func BenchmarkMountUnmount(b *testing.B) {
	testutil.RequiresRoot(b)
	root := b.TempDir()
	d, err := New(Config{Root: root})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = d.Close(); unmountUnder(b, root) })
	sock := serveOn(b, d)
	client, err := plugins.NewClientWithTimeout("unix://"+sock, nil, time.Minute)
	if err != nil {
		b.Fatal(err)
	}
	drv, err := drivers.NewStore((&dockerPlugin{name: "caisson", client: client}).getter()).GetDriver("caisson")
	if err != nil {
		b.Fatal(err)
	}
	bindDir := b.TempDir()
	backends := []struct {
		name string
		opts map[string]string
	}{
		{"dir", nil},
		{"loop", map[string]string{"type": "loop", "size": "16m"}},
		{"tmpfs", map[string]string{"type": "tmpfs", "size": "16m"}},
		{"bind", map[string]string{"type": "bind", "path": bindDir}},
	}
	per := map[string]time.Duration{}
	for _, be := range backends {
		b.Run(be.name, func(b *testing.B) {
			v, err := drv.Create("bench-"+be.name, be.opts)
			if err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			start := time.Now()
			for i := 0; i < b.N; i++ {
				id := fmt.Sprintf("c%d", i)
				if _, err := v.Mount(id); err != nil {
					b.Fatal(err)
				}
				if err := v.Unmount(id); err != nil {
					b.Fatal(err)
				}
			}
			per[be.name] = time.Since(start) / time.Duration(b.N)
			b.StopTimer()
			if err := drv.Remove(v); err != nil {
				b.Fatal(err)
			}
		})
	}
	if base := per["dir"]; base > 0 {
		for _, be := range backends {
			if p, ok := per[be.name]; ok {
				fmt.Printf("volume Mount+Unmount %-5s %8v  (%.2f× dir)\n", be.name, p.Round(time.Microsecond), float64(p)/float64(base))
			}
		}
	}
}
