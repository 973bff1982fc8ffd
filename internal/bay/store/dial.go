package store

import (
	"context"
	"net"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// deadPeerTimeout bounds how long a PostgreSQL connection waits on a server
// that stopped answering (a host gone, a partition) before it fails with a
// network error, which callers answer with database_unavailable: sent data
// unacknowledged for this long (TCP_USER_TIMEOUT) or an idle connection whose
// keep-alive probes go unanswered (idle 5 s + 3 probes 5 s apart). Without it
// a query on such a connection waits for the kernel's retransmission limit,
// about 15 minutes. A slow query on a live server is not affected: the server
// acknowledges what it receives.
const deadPeerTimeout = 20 * time.Second

// dialer makes PostgreSQL connections that notice a dead server.
func dialer() *net.Dialer {
	return &net.Dialer{
		KeepAliveConfig: net.KeepAliveConfig{Enable: true, Idle: 5 * time.Second, Interval: 5 * time.Second, Count: 3},
		Control: func(network, _ string, c syscall.RawConn) error {
			if network != "tcp" && network != "tcp4" && network != "tcp6" {
				return nil // a Unix socket has no peer to lose
			}
			var serr error
			err := c.Control(func(fd uintptr) {
				serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_USER_TIMEOUT, int(deadPeerTimeout/time.Millisecond))
			})
			if err != nil {
				return err
			}
			return serr
		},
	}
}

func dialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	return dialer().DialContext(ctx, network, addr)
}
