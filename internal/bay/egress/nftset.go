package egress

import (
	"context"
	"fmt"
	"net/netip"
	"sync"
	"time"

	"github.com/google/nftables"
)

// NFTSet is a Sink that adds addresses to two nftables sets with per-element
// timeouts (one of IPv4 addresses, one of IPv6 addresses; made by whoever
// owns the firewall, with the timeout flag). An address already there gets
// the later of its old and new expiry: it is deleted and added again in the
// same atomic batch, since re-adding an element does not refresh its timeout
// on every kernel.
type NFTSet struct {
	Table      *nftables.Table
	Set4, Set6 string

	mu      sync.Mutex
	expires map[netip.Addr]time.Time // what this process set, to avoid shortening and needless batches
}

// Use switches to other sets (a changed allow list gets new ones).
func (s *NFTSet) Use(set4, set6 string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.Set4, s.Set6 = set4, set6
	s.expires = nil
}

// maxRemembered bounds the expiry map; past it, expired entries are dropped.
const maxRemembered = 4096

// Allow adds addrs for ttl. Addresses no policy may open (AlwaysBlocked) are
// skipped: the firewall drops them before the set is consulted anyway.
func (s *NFTSet) Allow(_ context.Context, addrs []netip.Addr, ttl time.Duration) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.expires == nil {
		s.expires = map[netip.Addr]time.Time{}
	}
	now := time.Now()
	until := now.Add(ttl)
	c, err := nftables.New()
	if err != nil {
		return fmt.Errorf("egress: netlink: %w", err)
	}
	var queued []netip.Addr
	for _, a := range addrs {
		a = a.Unmap()
		if blocked(a) || !a.IsValid() {
			continue
		}
		// Within 10 s of what is there already: nothing to do.
		if old, ok := s.expires[a]; ok && old.After(until.Add(-10*time.Second)) {
			continue
		}
		set := &nftables.Set{Table: s.Table, Name: s.Set4, HasTimeout: true}
		if a.Is6() {
			set.Name = s.Set6
		}
		el := []nftables.SetElement{{Key: a.AsSlice(), Timeout: ttl}}
		// add (no-op if present), delete, add: the element ends with this timeout.
		if err := c.SetAddElements(set, el); err != nil {
			return fmt.Errorf("egress: add %s to set %s: %w", a, set.Name, err)
		}
		if err := c.SetDeleteElements(set, []nftables.SetElement{{Key: a.AsSlice()}}); err != nil {
			return fmt.Errorf("egress: refresh %s in set %s: %w", a, set.Name, err)
		}
		if err := c.SetAddElements(set, el); err != nil {
			return fmt.Errorf("egress: add %s to set %s: %w", a, set.Name, err)
		}
		queued = append(queued, a)
	}
	if len(queued) == 0 {
		return nil
	}
	if err := c.Flush(); err != nil {
		return fmt.Errorf("egress: update sets %s/%s of table %s: %w", s.Set4, s.Set6, s.Table.Name, err)
	}
	if len(s.expires) >= maxRemembered {
		for a, t := range s.expires {
			if t.Before(now) {
				delete(s.expires, a)
			}
		}
	}
	if len(s.expires) < maxRemembered {
		for _, a := range queued {
			s.expires[a] = until
		}
	}
	return nil
}

func blocked(a netip.Addr) bool {
	for _, p := range AlwaysBlocked {
		if p.Contains(a) {
			return true
		}
	}
	return a.IsLoopback() || a.IsUnspecified() || a.IsMulticast()
}
