package k8s

import (
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"k8s.io/client-go/rest"
)

func TestEndpointMode(t *testing.T) {
	tests := []struct {
		mode      string
		inCluster bool
		want      string
	}{
		{EndpointAuto, true, EndpointPodIP},
		{EndpointAuto, false, EndpointAPIProxy},
		{EndpointPodIP, false, EndpointPodIP},
		{EndpointAPIProxy, true, EndpointAPIProxy},
	}
	for _, tt := range tests {
		if got := endpointMode(tt.mode, tt.inCluster); got != tt.want {
			t.Errorf("endpointMode(%s, %v) = %s, want %s", tt.mode, tt.inCluster, got, tt.want)
		}
	}
	if _, err := (Config{Endpoint: "service"}).withDefaults(); err == nil {
		t.Error("endpoint service accepted")
	}
}

// TestProxyTransport: a fake API server checks what the transport sends to
// the pod proxy and answers as the real one does.
func TestProxyTransport(t *testing.T) {
	var got http.Header
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = r.Header.Clone()
		switch {
		case strings.HasSuffix(r.URL.Path, "/gone:8123/proxy/health"):
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(404)
			io.WriteString(w, `{"kind":"Status","apiVersion":"v1","status":"Failure","message":"pods \"gone\" not found","reason":"NotFound","code":404}`)
		case strings.HasSuffix(r.URL.Path, "/deaf:8123/proxy/health"):
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(503)
			io.WriteString(w, `{"kind":"Status","apiVersion":"v1","status":"Failure","message":"error trying to reach service: dial tcp 10.244.0.9:8123: connect: connection refused","reason":"ServiceUnavailable","code":503}`)
		case strings.HasSuffix(r.URL.Path, "/p:8123/proxy/fs/read_file"):
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(404)
			io.WriteString(w, `{"detail":"File not found: a.txt"}`)
		default:
			io.WriteString(w, "ok "+r.URL.Path)
		}
	}))
	defer api.Close()
	p, err := newAPIProxy(&rest.Config{Host: api.URL, BearerToken: "kube-token"}, "ns", slog.Default())
	if err != nil {
		t.Fatal(err)
	}
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "direct "+r.Header.Get("Authorization"))
	}))
	defer other.Close()
	c := &http.Client{Transport: (&Driver{proxy: p}).WrapTransport(http.DefaultTransport)}
	get := func(url string) (*http.Response, string, error) {
		req, _ := http.NewRequest("GET", url, nil)
		req.Header.Set("Authorization", "Bearer ship-token")
		resp, err := c.Do(req)
		if err != nil {
			return nil, "", err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b), nil
	}

	if ep := p.endpoint("p", "8123"); ep != api.URL+"/api/v1/namespaces/ns/pods/p:8123/proxy" {
		t.Fatalf("endpoint %s", ep)
	}
	resp, body, err := get(p.endpoint("p", "8123") + "/health")
	if err != nil || resp.StatusCode != 200 || body != "ok /api/v1/namespaces/ns/pods/p:8123/proxy/health" {
		t.Fatalf("through the proxy: %v %v %q", resp, err, body)
	}
	if got.Get("Authorization") != "Bearer kube-token" || got.Get(shipTokenHeader) != "ship-token" {
		t.Errorf("headers at the API server: %v", got)
	}
	// Ship's own error answers pass unchanged.
	if resp, body, err := get(p.endpoint("p", "8123") + "/fs/read_file"); err != nil || resp.StatusCode != 404 || !strings.Contains(body, "File not found") {
		t.Errorf("ship's 404: %v %v %q", resp, err, body)
	}
	// The API server's own errors are no answer from the runtime; a pod that
	// is gone or does not listen is a dial error (never reached Ship).
	for _, pod := range []string{"gone", "deaf"} {
		_, _, err := get(p.endpoint(pod, "8123") + "/health")
		var op *net.OpError
		if !errors.As(err, &op) || op.Op != "dial" {
			t.Errorf("%s: %v, want a dial error", pod, err)
		}
	}
	// Other hosts go the usual way, Authorization kept.
	if _, body, err := get(other.URL + "/x"); err != nil || body != "direct Bearer ship-token" {
		t.Errorf("direct: %q %v", body, err)
	}
}
