package store

import (
	"net"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestDialerNoticesDeadPeers: PostgreSQL connections carry TCP_USER_TIMEOUT
// and keep-alive, so a server that stops answering fails a query within
// deadPeerTimeout instead of the kernel's ~15 minutes.
func TestDialerNoticesDeadPeers(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	c, err := dialContext(t.Context(), "tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	raw, err := c.(*net.TCPConn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var userTimeout, keepAlive, idle, interval, count int
	var gerr error
	if err := raw.Control(func(fd uintptr) {
		get := func(level, opt int) int {
			v, err := unix.GetsockoptInt(int(fd), level, opt)
			if err != nil && gerr == nil {
				gerr = err
			}
			return v
		}
		userTimeout = get(unix.IPPROTO_TCP, unix.TCP_USER_TIMEOUT)
		keepAlive = get(unix.SOL_SOCKET, unix.SO_KEEPALIVE)
		idle = get(unix.IPPROTO_TCP, unix.TCP_KEEPIDLE)
		interval = get(unix.IPPROTO_TCP, unix.TCP_KEEPINTVL)
		count = get(unix.IPPROTO_TCP, unix.TCP_KEEPCNT)
	}); err != nil {
		t.Fatal(err)
	}
	if gerr != nil {
		t.Fatal(gerr)
	}
	if userTimeout != int(deadPeerTimeout/time.Millisecond) {
		t.Errorf("TCP_USER_TIMEOUT = %d ms, want %d", userTimeout, deadPeerTimeout/time.Millisecond)
	}
	if keepAlive == 0 || idle != 5 || interval != 5 || count != 3 {
		t.Errorf("keep-alive on=%d idle=%ds interval=%ds count=%d, want on, 5, 5, 3", keepAlive, idle, interval, count)
	}
	// Unix sockets (a local server's socket directory) dial as before.
	if err := dialer().Control("unix", "", nil); err != nil {
		t.Errorf("unix socket: %v", err)
	}
}
