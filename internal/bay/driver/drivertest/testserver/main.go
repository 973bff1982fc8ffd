// Command testserver is the tiny runtime the driver conformance suite runs when
// the real Ship image is not at hand. It is built statically and imported as a
// one-file image (see docker tests), so it needs no shell and no libc.
//
//	testserver               serve HTTP on $PORT (default 8123): GET /health → 200
//	testserver write P DATA  write DATA to file P (as the container user)
//	testserver read P        print file P
//	testserver id            print uid:gid
//	testserver dial ADDR     try a TCP connection to ADDR (2 s): print "open" or "closed: <why>"
//	testserver resolve NAME  look NAME up (2 s): print its addresses or "error: <why>"
package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "testserver:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	if len(args) == 0 {
		return serve()
	}
	switch args[0] {
	case "write":
		if len(args) != 3 {
			return errors.New("usage: write PATH DATA")
		}
		return os.WriteFile(args[1], []byte(args[2]), 0o644)
	case "read":
		if len(args) != 2 {
			return errors.New("usage: read PATH")
		}
		b, err := os.ReadFile(args[1])
		if err != nil {
			return err
		}
		_, err = os.Stdout.Write(b)
		return err
	case "id":
		fmt.Printf("%d:%d\n", os.Getuid(), os.Getgid())
		return nil
	case "dial":
		if len(args) != 2 {
			return errors.New("usage: dial ADDR")
		}
		c, err := net.DialTimeout("tcp", args[1], 2*time.Second)
		if err != nil {
			fmt.Println("closed:", err)
			return nil
		}
		c.Close()
		fmt.Println("open")
		return nil
	case "resolve":
		if len(args) != 2 {
			return errors.New("usage: resolve NAME")
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		addrs, err := net.DefaultResolver.LookupHost(ctx, args[1])
		if err != nil {
			fmt.Println("error:", err)
			return nil
		}
		fmt.Println(strings.Join(addrs, " "))
		return nil
	default:
		return fmt.Errorf("unknown command %q", args[0])
	}
}

func serve() error {
	port := os.Getenv("PORT")
	if port == "" {
		port = "8123"
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /health", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"status":"healthy"}`))
	})
	srv := &http.Server{Addr: ":" + port, Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	errc := make(chan error, 1)
	go func() { errc <- srv.ListenAndServe() }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		return srv.Shutdown(sctx)
	}
}
