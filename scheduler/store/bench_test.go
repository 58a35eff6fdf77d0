package store_test

import (
	"bytes"
	"path/filepath"
	"testing"

	"github.com/caisson/caisson/scheduler/store"
)

// BenchmarkAppend appends 256-byte events, one write each: in memory, and
// on bbolt with and without fsync; then on bbolt with fsync in batches of
// 1,000 events per write (AppendBatch, a master's group commit).
func BenchmarkAppend(b *testing.B) {
	event := bytes.Repeat([]byte("e"), 256)
	bolt := func(opts store.Options) func(b *testing.B) store.Store {
		return func(b *testing.B) store.Store {
			s, err := store.Open(filepath.Join(b.TempDir(), "scheduler.db"), opts)
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { _ = s.Close() })
			return s
		}
	}
	benchmarks := []struct {
		name string
		open func(b *testing.B) store.Store
	}{
		{"memory", func(*testing.B) store.Store { return store.NewMemory() }},
		{"bolt-nosync", bolt(store.Options{NoSync: true})},
		{"bolt-sync", bolt(store.Options{})},
	}
	for _, bm := range benchmarks {
		b.Run(bm.name, func(b *testing.B) {
			s := bm.open(b)
			b.SetBytes(int64(len(event)))
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				if err := s.Append(uint64(i)+1, event); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
		})
	}
	b.Run("bolt-sync-batch1000", func(b *testing.B) {
		s := bolt(store.Options{})(b)
		const size = 1000
		events := make([][]byte, size)
		for i := range events {
			events[i] = event
		}
		b.SetBytes(int64(len(event)))
		b.ReportAllocs()
		b.ResetTimer()
		for seq := uint64(1); seq <= uint64(b.N); seq += size {
			n := min(size, uint64(b.N)+1-seq)
			if err := s.AppendBatch(seq, events[:n]); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
	})
}
