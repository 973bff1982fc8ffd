package store_test

import (
	"testing"
	"time"

	"github.com/shipyard/shipyard/internal/bay/store/storetest"
)

// BenchmarkCreateExecution is the history write every capability call makes,
// one caller at a time and from 16 at once (16 sandboxes executing).
func BenchmarkCreateExecution(b *testing.B) {
	for _, d := range storetest.Dialects() {
		b.Run(d+"/serial", func(b *testing.B) {
			s := storetest.Open(b, d)
			for b.Loop() {
				if err := s.CreateExecution(b.Context(), newExecution("sandbox-aaaaaaaaaaaa", "python", true, time.Now())); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(d+"/parallel16", func(b *testing.B) {
			s := storetest.Open(b, d)
			b.SetParallelism(8) // × GOMAXPROCS 2 = 16 callers
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if err := s.CreateExecution(b.Context(), newExecution("sandbox-aaaaaaaaaaaa", "python", true, time.Now())); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}
