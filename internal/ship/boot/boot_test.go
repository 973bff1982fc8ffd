package boot

import (
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestParseProfileEnv(t *testing.T) {
	tests := []struct {
		name             string
		legacy, js       string
		legacySet, jsSet bool
		want             map[string]string
		present, wantErr bool
		dropped          []string
	}{
		{name: "none", want: map[string]string{}},
		{name: "legacy", legacy: "A=1:B=x=y:junk:C=", legacySet: true, present: true,
			want: map[string]string{"A": "1", "B": "x=y", "C": ""}},
		{name: "json keeps colons", js: `{"URL":"http://h:1/p","A":"it's"}`, jsSet: true, present: true,
			want: map[string]string{"URL": "http://h:1/p", "A": "it's"}},
		{name: "json wins", legacy: "A=old:B=b", legacySet: true, js: `{"A":"new"}`, jsSet: true, present: true,
			want: map[string]string{"A": "new", "B": "b"}},
		{name: "bad names dropped", js: `{"1A":"x","OK":"y","B C":"z","N":"a\u0000"}`, jsSet: true, present: true,
			want: map[string]string{"OK": "y"}, dropped: []string{"1A", "B C", "N"}},
		{name: "bad json", js: `{`, jsSet: true, present: true, want: map[string]string{}, wantErr: true},
		{name: "set but empty", legacySet: true, present: true, want: map[string]string{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env, present, dropped, err := ParseProfileEnv(tt.legacy, tt.legacySet, tt.js, tt.jsSet)
			if (err != nil) != tt.wantErr || present != tt.present || !reflect.DeepEqual(env, tt.want) ||
				strings.Join(dropped, ",") != strings.Join(tt.dropped, ",") {
				t.Fatalf("got %v %v %v %v", env, present, dropped, err)
			}
		})
	}
}

var tricky = map[string]string{
	"PLAIN":   "value",
	"COLON":   "http://proxy:3128",
	"QUOTE":   `it's "quoted" $HOME \n`,
	"NEWLINE": "line1\nline2",
	"EMPTY":   "",
	"SPACES":  "  a  b  ",
}

// The file must give back exactly the values, both to bash and to the kernel's
// init code (Python shlex).
func TestEnvFileRoundTrip(t *testing.T) {
	dir := t.TempDir()
	path, err := WriteEnvFile(dir, tricky, nil)
	if err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o644 {
		t.Fatalf("mode %v", fi.Mode())
	}
	for k, v := range tricky {
		out, err := exec.Command("bash", "-c", `. "$1" && printf '%s' "${!2}"`, "_", path, k).Output()
		if err != nil || string(out) != v {
			t.Errorf("bash %s: %q %v", k, out, err)
		}
	}
	if _, err := exec.LookPath("python3"); err != nil {
		t.Skip("no python3 for the init-code check")
	}
	code := EnvInitCode(path) + "import os, json\nprint(json.dumps({k: os.environ.get(k) for k in " +
		`["PLAIN","COLON","QUOTE","NEWLINE","EMPTY","SPACES"]}))` + "\n"
	out, err := exec.Command("python3", "-c", code).Output()
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range tricky {
		if !strings.Contains(string(out), `"`+k+`": `) {
			t.Errorf("python misses %s: %s", k, out)
		}
		_ = v
	}
	if !strings.Contains(string(out), `"NEWLINE": "line1\nline2"`) || !strings.Contains(string(out), `"COLON": "http://proxy:3128"`) ||
		!strings.Contains(string(out), `"QUOTE": "it's \"quoted\" $HOME \\n"`) {
		t.Errorf("python values: %s", out)
	}
	// A missing file is not an error for the kernel.
	if err := exec.Command("python3", "-c", EnvInitCode(filepath.Join(dir, "nope"))).Run(); err != nil {
		t.Errorf("missing env file: %v", err)
	}
}

func TestCopySkills(t *testing.T) {
	src, dst := t.TempDir(), t.TempDir()
	write := func(p, s string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(src+"/alpha/SKILL.md", "new")
	write(src+"/alpha/scripts/run.sh", "#!/bin/sh")
	write(src+"/README", "not a skill")
	write(dst+"/skills/alpha/stale.txt", "old")
	write(dst+"/skills/mine/SKILL.md", "user skill")
	names, err := CopySkills(src, dst+"/skills", nil)
	if err != nil || len(names) != 1 || names[0] != "alpha" {
		t.Fatalf("%v %v", names, err)
	}
	for p, want := range map[string]string{"alpha/SKILL.md": "new", "alpha/scripts/run.sh": "#!/bin/sh", "mine/SKILL.md": "user skill"} {
		b, err := os.ReadFile(filepath.Join(dst, "skills", p))
		if err != nil || string(b) != want {
			t.Errorf("%s: %q %v", p, b, err)
		}
	}
	if _, err := os.Stat(dst + "/skills/alpha/stale.txt"); !os.IsNotExist(err) {
		t.Error("stale file of a replaced skill kept")
	}
	if names, err := CopySkills(src+"/missing", dst, nil); err != nil || names != nil {
		t.Errorf("missing source: %v %v", names, err)
	}
}

func TestChildEnv(t *testing.T) {
	got := ChildEnv([]string{"SHIP_TOKEN=secret", "SHIP_PORT=1", "BAY_PROFILE_ENV=A=1", "HOME=/root", "LANG=C", "PATH=/bin"},
		"/workspace", "shipyard", map[string]string{"A": "1"})
	want := []string{"LANG=C", "PATH=/bin", "HOME=/workspace", "USER=shipyard", "LOGNAME=shipyard", "SHELL=/bin/bash", "A=1"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("%q", got)
	}
}

func TestPrepareWorkspace(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "ws")
	if err := PrepareWorkspace(dir, nil); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		t.Fatal(err)
	}
	if os.Geteuid() == 0 {
		if err := PrepareWorkspace(dir, &Owner{UID: 1000, GID: 1000}); err != nil {
			t.Fatal(err)
		}
	}
}
