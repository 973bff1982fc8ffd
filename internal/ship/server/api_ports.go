package server

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// ListeningPort is one TCP socket in LISTEN state that user code holds.
type ListeningPort struct {
	Port    int    `json:"port"`
	Address string `json:"address"`
	// Reachable is false for a socket bound to a loopback address only: Bay
	// reaches a sandbox's ports by the container's address, not its loopback.
	Reachable bool `json:"reachable"`
}

// Bounds of one listing (the container's pids limit is far lower).
const (
	maxProcScan   = 4096
	maxFDsPerProc = 4096
	maxListed     = 256
	maxProcNet    = 4 << 20
)

// handlePorts lists the TCP ports user code listens on: the LISTEN sockets
// of /proc/net/tcp{,6} that a process of the sandbox holds, except those of
// Ship itself, PID 1 (the init) and the Python kernel's ZeroMQ channels
// (loopback). A socket no process holds (Docker's embedded DNS) is not listed.
func (s *Server) handlePorts(w http.ResponseWriter, r *http.Request) {
	ports, err := listeningPorts("/proc", os.Getpid())
	if err != nil {
		s.log.WarnContext(r.Context(), "listing ports", "err", err)
		detail(w, http.StatusInternalServerError, "Could not list listening ports")
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"ports": ports})
}

// listeningPorts reads procRoot (normally /proc) as seen by process self.
func listeningPorts(procRoot string, self int) ([]ListeningPort, error) {
	var socks []procNetEntry
	for _, name := range []string{"tcp", "tcp6"} {
		f, err := os.Open(filepath.Join(procRoot, "net", name))
		if err != nil {
			if os.IsNotExist(err) { // no IPv6 in this kernel
				continue
			}
			return nil, err
		}
		b, err := io.ReadAll(io.LimitReader(f, maxProcNet))
		f.Close()
		if err != nil {
			return nil, err
		}
		socks = append(socks, parseProcNetTCP(b)...)
	}
	if len(socks) == 0 {
		return []ListeningPort{}, nil
	}
	owners := socketOwners(procRoot, self)
	seen := map[string]bool{}
	out := []ListeningPort{}
	for _, sk := range socks {
		owner, held := owners[sk.inode]
		switch {
		case !held:
			continue // no process of the sandbox holds it (e.g. Docker's DNS on 127.0.0.11)
		case owner == ownerShip, owner == ownerInit:
			continue
		case owner == ownerKernel:
			if sk.ip.IsLoopback() {
				continue // the kernel's ZeroMQ channels
			}
		}
		addr := sk.ip.String()
		key := addr + "|" + strconv.Itoa(sk.port)
		if seen[key] {
			continue
		}
		seen[key] = true
		out = append(out, ListeningPort{Port: sk.port, Address: addr, Reachable: !sk.ip.IsLoopback()})
		if len(out) >= maxListed {
			break
		}
	}
	slices.SortFunc(out, func(a, b ListeningPort) int {
		if a.Port != b.Port {
			return a.Port - b.Port
		}
		return strings.Compare(a.Address, b.Address)
	})
	return out, nil
}

type procNetEntry struct {
	ip    net.IP
	port  int
	inode string
}

// parseProcNetTCP returns the LISTEN (state 0A) sockets of a /proc/net/tcp or
// tcp6 table; malformed lines are skipped.
func parseProcNetTCP(b []byte) []procNetEntry {
	var out []procNetEntry
	sc := bufio.NewScanner(bytes.NewReader(b))
	first := true
	for sc.Scan() {
		if first { // header
			first = false
			continue
		}
		f := strings.Fields(sc.Text())
		if len(f) < 10 || f[3] != "0A" {
			continue
		}
		host, portHex, ok := strings.Cut(f[1], ":")
		if !ok {
			continue
		}
		port, err := strconv.ParseUint(portHex, 16, 16)
		if err != nil || port == 0 {
			continue
		}
		ip, err := procIP(host)
		if err != nil {
			continue
		}
		out = append(out, procNetEntry{ip: ip, port: int(port), inode: f[9]})
	}
	return out
}

// procIP decodes the kernel's hex address: 32-bit words in host (little-endian) order.
func procIP(h string) (net.IP, error) {
	raw, err := hex.DecodeString(h)
	if err != nil || (len(raw) != 4 && len(raw) != 16) {
		return nil, fmt.Errorf("bad address %q", h)
	}
	ip := make(net.IP, len(raw))
	for i := 0; i < len(raw); i += 4 {
		ip[i], ip[i+1], ip[i+2], ip[i+3] = raw[i+3], raw[i+2], raw[i+1], raw[i]
	}
	if v4 := ip.To4(); v4 != nil && len(raw) == 16 && !ip.Equal(net.IPv6zero) {
		return v4, nil // ::ffff:a.b.c.d
	}
	return ip, nil
}

type sockOwner int

const (
	ownerUser sockOwner = iota
	ownerShip
	ownerInit
	ownerKernel
)

// socketOwners maps socket inodes to the kind of process holding them, for
// the processes this user may inspect (bounded).
func socketOwners(procRoot string, self int) map[string]sockOwner {
	out := map[string]sockOwner{}
	entries, err := os.ReadDir(procRoot)
	if err != nil {
		return out
	}
	scanned := 0
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid <= 0 {
			continue
		}
		if scanned++; scanned > maxProcScan {
			break
		}
		kind := ownerUser
		switch {
		case pid == self:
			kind = ownerShip
		case pid == 1:
			kind = ownerInit
		default:
			cmd, _ := os.ReadFile(filepath.Join(procRoot, e.Name(), "cmdline"))
			if bytes.Contains(cmd, []byte("ipykernel_launcher")) {
				kind = ownerKernel
			}
		}
		fdDir := filepath.Join(procRoot, e.Name(), "fd")
		fds, err := os.ReadDir(fdDir)
		if err != nil {
			continue
		}
		for i, fd := range fds {
			if i >= maxFDsPerProc {
				break
			}
			link, err := os.Readlink(filepath.Join(fdDir, fd.Name()))
			if err != nil {
				continue
			}
			if ino, ok := strings.CutPrefix(link, "socket:["); ok {
				out[strings.TrimSuffix(ino, "]")] = kind
			}
		}
	}
	return out
}
