package tenant

import (
	"math"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Limiter is a token bucket per owner, in this replica's memory: with N
// replicas behind a load balancer an owner gets up to N times the rate
// (documented in docs/security.md). Buckets are bounded: an owner's bucket
// idle long enough to have refilled is dropped (a new one is the same).
type Limiter struct {
	rate  rate.Limit
	burst int
	max   int // buckets kept

	mu      sync.Mutex
	buckets map[string]*bucket
}

type bucket struct {
	lim  *rate.Limiter
	last time.Time
}

// maxBuckets bounds the owners tracked at once.
const maxBuckets = 10000

// NewLimiter returns a limiter of rps requests per second per owner with the
// given burst (0: rps rounded up, at least 1), or nil (no limit) when rps <= 0.
func NewLimiter(rps float64, burst int) *Limiter {
	if rps <= 0 {
		return nil
	}
	if burst <= 0 {
		burst = max(1, int(math.Ceil(rps)))
	}
	return &Limiter{rate: rate.Limit(rps), burst: burst, max: maxBuckets, buckets: map[string]*bucket{}}
}

// Allow takes a token of owner's bucket at now, or says how long until one is there.
func (l *Limiter) Allow(owner string, now time.Time) (ok bool, retryAfter time.Duration) {
	if l == nil {
		return true, 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.buckets[owner]
	if b == nil {
		if len(l.buckets) >= l.max {
			l.sweep(now)
		}
		b = &bucket{lim: rate.NewLimiter(l.rate, l.burst)}
		l.buckets[owner] = b
	}
	b.last = now
	r := b.lim.ReserveN(now, 1)
	if d := r.DelayFrom(now); d > 0 {
		r.CancelAt(now)
		return false, d
	}
	return true, 0
}

// sweep drops buckets that have refilled since their last use; if that frees
// nothing (more than max owners busy at once), it drops arbitrary ones, which
// only ever lets those owners through sooner.
func (l *Limiter) sweep(now time.Time) {
	refill := time.Duration(float64(l.burst) / float64(l.rate) * float64(time.Second))
	for o, b := range l.buckets {
		if now.Sub(b.last) >= refill {
			delete(l.buckets, o)
		}
	}
	for o := range l.buckets {
		if len(l.buckets) < l.max {
			break
		}
		delete(l.buckets, o)
	}
}

// Len is the number of buckets kept (for tests).
func (l *Limiter) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.buckets)
}
