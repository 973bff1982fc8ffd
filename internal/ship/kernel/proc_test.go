package kernel

import (
	"fmt"
	"net"
	"os"
	"testing"
)

// The kernel's ports must lie outside the ranges the system picks from on its
// own: ipykernel binds its IOPub pipe to a random port in 49152-65535 while
// it starts, and outgoing connections take local ports from the ephemeral
// range. A port from either could be gone by the time the kernel binds it (CI
// once saw Ship's heartbeat socket reach the kernel's PULL pipe).
func TestConnectionPortsAvoidSystemRanges(t *testing.T) {
	eph := [2]int{32768, 60999}
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		fmt.Sscan(string(b), &eph[0], &eph[1])
	}
	for range 50 {
		ci, err := freeConnectionInfo()
		if err != nil {
			t.Fatal(err)
		}
		seen := map[int]bool{}
		for _, p := range []int{ci.ShellPort, ci.IOPubPort, ci.StdinPort, ci.ControlPort, ci.HBPort} {
			if p >= 49152 || (p >= eph[0] && p <= eph[1]) || p < 1024 {
				t.Fatalf("port %d lies where the system picks ports itself (ephemeral %d-%d, zmq random 49152-65535)", p, eph[0], eph[1])
			}
			if seen[p] {
				t.Fatalf("port %d picked twice in %+v", p, ci)
			}
			seen[p] = true
		}
	}
}

func TestFreePortsSkipsTakenPorts(t *testing.T) {
	ports, err := freePorts(3, kernelPortLow, kernelPortLow+4)
	if err != nil {
		t.Skipf("band not free on this machine: %v", err)
	}
	// Hold three of the four; one is left, and asking for two must fail.
	var held []net.Listener
	for _, p := range ports {
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p))
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, l)
	}
	defer func() {
		for _, l := range held {
			l.Close()
		}
	}()
	got, err := freePorts(1, kernelPortLow, kernelPortLow+4)
	if err != nil || len(got) != 1 {
		t.Fatalf("freePorts(1) = %v, %v; want the one free port", got, err)
	}
	for _, p := range ports {
		if got[0] == p {
			t.Fatalf("freePorts returned held port %d", p)
		}
	}
	if _, err := freePorts(2, kernelPortLow, kernelPortLow+4); err == nil {
		t.Fatal("freePorts(2) with one free port succeeded")
	}
}
