package server

import (
	"net"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

const procTCP = `  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000:1F40 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 111 1 0 100 0 0 10 0
   1: 00000000:1FBB 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 222 1 0 100 0 0 10 0
   2: 0100007F:A000 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 333 1 0 100 0 0 10 0
   3: 0100007F:A001 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 444 1 0 100 0 0 10 0
   4: 0200110A:1F40 0300110A:C350 01 00000000:00000000 00:00000000 00000000  1000        0 555 1 0 100 0 0 10 0
   5: 0B00007F:948D 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 888 1 0 100 0 0 10 0
   6: garbage
`

const procTCP6 = `  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000000000000000000000000000:0BB8 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 666 1 0 100 0 0 10 0
   1: 0000000000000000FFFF00000100007F:0BB9 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 777 1 0 100 0 0 10 0
`

// fakeProc lays out /proc with: pid 50 (Ship, holds 222 = 8123), pid 60
// (the kernel: 333 on loopback), pid 70 (user code: 111, 444, 666, 777);
// 888 (Docker's DNS on 127.0.0.11) is held by no process of the sandbox.
func fakeProc(t *testing.T) string {
	root := t.TempDir()
	write := func(p, s string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(filepath.Join(root, p)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(root, p), []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("net/tcp", procTCP)
	write("net/tcp6", procTCP6)
	write("50/cmdline", "/usr/local/bin/ship\x00")
	write("60/cmdline", "python3\x00-m\x00ipykernel_launcher\x00-f\x00x.json\x00")
	write("70/cmdline", "python3\x00-m\x00http.server\x00")
	link := func(pid, fd, inode string) {
		t.Helper()
		dir := filepath.Join(root, pid, "fd")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink("socket:["+inode+"]", filepath.Join(dir, fd)); err != nil {
			t.Fatal(err)
		}
	}
	link("50", "3", "222")
	link("60", "5", "333")
	link("70", "3", "111")
	link("70", "4", "444")
	link("70", "5", "666")
	link("70", "6", "777")
	return root
}

func TestListeningPortsExcludesShipAndKernel(t *testing.T) {
	got, err := listeningPorts(fakeProc(t), 50)
	if err != nil {
		t.Fatal(err)
	}
	want := []ListeningPort{
		{Port: 3000, Address: "::", Reachable: true},
		{Port: 3001, Address: "127.0.0.1", Reachable: false},
		{Port: 8000, Address: "0.0.0.0", Reachable: true},
		{Port: 40961, Address: "127.0.0.1", Reachable: false},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("ports\n got %+v\nwant %+v", got, want)
	}
}

func TestProcIP(t *testing.T) {
	for in, want := range map[string]string{
		"0100007F":                         "127.0.0.1",
		"0200110A":                         "10.17.0.2",
		"00000000000000000000000000000000": "::",
		"00000000000000000000000001000000": "::1",
	} {
		ip, err := procIP(in)
		if err != nil || !ip.Equal(net.ParseIP(want)) {
			t.Errorf("procIP(%s) = %v, %v; want %s", in, ip, err, want)
		}
	}
	for _, bad := range []string{"", "zz", "0100"} {
		if _, err := procIP(bad); err == nil {
			t.Errorf("procIP(%q) accepted", bad)
		}
	}
}

func TestListeningPortsOfThisProcess(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	port := l.Addr().(*net.TCPAddr).Port
	// Seen as someone else's socket it is listed; as Ship's own it is not.
	for _, tc := range []struct {
		self   int
		listed bool
	}{{os.Getpid(), false}, {-1, true}} {
		got, err := listeningPorts("/proc", tc.self)
		if err != nil {
			t.Fatal(err)
		}
		found := false
		for _, p := range got {
			found = found || p.Port == port
		}
		if found != tc.listed {
			t.Errorf("self=%d: port %d listed=%v, want %v (%+v)", tc.self, port, found, tc.listed, got)
		}
	}
}
