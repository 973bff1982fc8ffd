// Package keylock is an in-process lock per key (per sandbox) that honours
// context deadlines and frees the memory of keys nobody holds.
package keylock

import (
	"context"
	"sync"
)

// Locks is a set of keyed mutexes. The zero value is not usable; use New.
type Locks struct {
	mu    sync.Mutex
	locks map[string]*entry
}

type entry struct {
	ch   chan struct{} // buffered(1): holding the token = holding the lock
	refs int
}

// New returns an empty lock set.
func New() *Locks { return &Locks{locks: make(map[string]*entry)} }

// Lock acquires the lock of key or returns ctx.Err(). The returned func releases it.
func (l *Locks) Lock(ctx context.Context, key string) (func(), error) {
	l.mu.Lock()
	e := l.locks[key]
	if e == nil {
		e = &entry{ch: make(chan struct{}, 1)}
		l.locks[key] = e
	}
	e.refs++
	l.mu.Unlock()

	select {
	case e.ch <- struct{}{}:
		var once sync.Once
		return func() { once.Do(func() { <-e.ch; l.release(key, e) }) }, nil
	case <-ctx.Done():
		l.release(key, e)
		return nil, ctx.Err()
	}
}

func (l *Locks) release(key string, e *entry) {
	l.mu.Lock()
	e.refs--
	if e.refs == 0 {
		delete(l.locks, key)
	}
	l.mu.Unlock()
}

// Len returns the number of keys currently held or waited on.
func (l *Locks) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.locks)
}
