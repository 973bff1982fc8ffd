// Package boot prepares a sandbox for Ship at start-up: the workspace
// directory, the built-in skills copied into it, the profile environment
// written to .bay_env.sh, and the environment user code runs with.
package boot

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
)

// EnvFileName is the profile environment file in the workspace (upstream name).
const EnvFileName = ".bay_env.sh"

// Owner is the uid/gid to give created files to; nil leaves them as created.
type Owner struct{ UID, GID int }

func (o *Owner) chown(path string) error {
	if o == nil {
		return nil
	}
	if err := os.Lchown(path, o.UID, o.GID); err != nil {
		return fmt.Errorf("chown %s: %w", path, err)
	}
	return nil
}

// PrepareWorkspace creates dir if needed. With an owner (Ship runs as root) it
// gives the directory itself (not its content) to the owner, mode 0755, so the
// sandbox user can write in a root-owned volume. Without one it checks that
// the directory is writable.
func PrepareWorkspace(dir string, owner *Owner) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("create workspace: %w", err)
	}
	if owner != nil {
		if err := owner.chown(dir); err != nil {
			return err
		}
		if err := os.Chmod(dir, 0o755); err != nil {
			return fmt.Errorf("chmod workspace: %w", err)
		}
		return nil
	}
	f, err := os.CreateTemp(dir, ".ship-probe-*")
	if err != nil {
		return fmt.Errorf("workspace %s is not writable (mount a volume owned by this user or run Ship as root): %w", dir, err)
	}
	f.Close()
	return os.Remove(f.Name())
}

var identifier = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// ParseProfileEnv merges the two ways Bay passes profile environment:
// legacy BAY_PROFILE_ENV ("K=V:K2=V2", pairs without '=' ignored, as upstream;
// values cannot contain ':') and BAY_PROFILE_ENV_JSON ({"K":"V"}), which wins.
// Names that are not identifiers and values with NUL are dropped and reported.
// present says whether either variable was set at all.
func ParseProfileEnv(legacy string, legacySet bool, jsonText string, jsonSet bool) (env map[string]string, present bool, dropped []string, err error) {
	env = map[string]string{}
	if legacySet {
		for _, pair := range strings.Split(legacy, ":") {
			k, v, ok := strings.Cut(pair, "=")
			if !ok {
				continue
			}
			env[strings.TrimSpace(k)] = v
		}
	}
	if jsonSet && strings.TrimSpace(jsonText) != "" {
		var m map[string]string
		if jerr := json.Unmarshal([]byte(jsonText), &m); jerr != nil {
			err = fmt.Errorf("BAY_PROFILE_ENV_JSON: %w", jerr)
		}
		for k, v := range m {
			env[k] = v
		}
	}
	for k, v := range env {
		if !identifier.MatchString(k) || strings.IndexByte(v, 0) >= 0 {
			dropped = append(dropped, k)
			delete(env, k)
		}
	}
	sort.Strings(dropped)
	return env, legacySet || jsonSet, dropped, err
}

// Quote single-quotes s for POSIX shells.
func Quote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// EnvFile renders the profile environment as a shell script of exports.
func EnvFile(env map[string]string) []byte {
	keys := make([]string, 0, len(env))
	for k := range env {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	b.WriteString("# Profile environment, written by Ship at start-up. Sourced by shell and terminal;\n")
	b.WriteString("# loaded into os.environ by the Python kernel when it starts.\n")
	for _, k := range keys {
		b.WriteString("export " + k + "=" + Quote(env[k]) + "\n")
	}
	return []byte(b.String())
}

// WriteEnvFile writes the env file atomically (mode 0644, given to owner).
func WriteEnvFile(dir string, env map[string]string, owner *Owner) (string, error) {
	path := filepath.Join(dir, EnvFileName)
	tmp, err := os.CreateTemp(dir, ".bay_env-*")
	if err != nil {
		return "", fmt.Errorf("write %s: %w", path, err)
	}
	_, err = tmp.Write(EnvFile(env))
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(tmp.Name(), 0o644)
	}
	if err == nil {
		err = owner.chown(tmp.Name())
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		os.Remove(tmp.Name())
		return "", fmt.Errorf("write %s: %w", path, err)
	}
	return path, nil
}

// EnvInitCode is Python run in the kernel after each (re)start: it loads the
// exports of the env file into os.environ (shlex handles the quoting, multi-line
// values included), so edits to the file reach the kernel on restart.
func EnvInitCode(envFile string) string {
	q, _ := json.Marshal(envFile)
	return `def _shipyard_profile_env(path):
    import os, shlex
    try:
        with open(path, encoding="utf-8") as f:
            words = shlex.split(f.read(), comments=True)
    except (OSError, ValueError):
        return
    for w in words:
        k, sep, v = w.partition("=")
        if sep and k.isidentifier():
            os.environ[k] = v
_shipyard_profile_env(` + string(q) + `)
del _shipyard_profile_env
`
}

// CopySkills copies each directory src/<name> to dst/<name>, replacing only
// that skill (other content of dst is left alone). It returns the names copied.
func CopySkills(src, dst string, owner *Owner) ([]string, error) {
	ents, err := os.ReadDir(src)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read skills: %w", err)
	}
	var names []string
	for _, e := range ents {
		if !e.IsDir() {
			continue
		}
		if err := os.MkdirAll(dst, 0o755); err != nil {
			return names, fmt.Errorf("create %s: %w", dst, err)
		}
		if err := owner.chown(dst); err != nil {
			return names, err
		}
		target := filepath.Join(dst, e.Name())
		if err := os.RemoveAll(target); err != nil {
			return names, fmt.Errorf("replace skill %s: %w", e.Name(), err)
		}
		if err := copyTree(filepath.Join(src, e.Name()), target, owner); err != nil {
			return names, fmt.Errorf("copy skill %s: %w", e.Name(), err)
		}
		names = append(names, e.Name())
	}
	return names, nil
}

func copyTree(src, dst string, owner *Owner) error {
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		out := filepath.Join(dst, rel)
		info, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case d.IsDir():
			if err := os.Mkdir(out, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
				return err
			}
		case info.Mode()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			if err := os.Symlink(target, out); err != nil {
				return err
			}
		case info.Mode().IsRegular():
			if err := copyFile(p, out, info.Mode().Perm()|0o600); err != nil {
				return err
			}
		default:
			return nil // sockets, devices: not part of a skill
		}
		return owner.chown(out)
	})
}

func copyFile(src, dst string, perm fs.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, perm)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// ChildEnv is the environment of user code: Ship's own environment without
// Ship's settings and secrets (SHIP_*) and the raw profile variables, plus
// the sandbox user's identity and the profile environment.
func ChildEnv(base []string, workspace, user string, profile map[string]string) []string {
	out := make([]string, 0, len(base)+len(profile)+5)
	hasPath := false
	for _, kv := range base {
		k, _, _ := strings.Cut(kv, "=")
		switch {
		case strings.HasPrefix(k, "SHIP_"), k == "BAY_PROFILE_ENV", k == "BAY_PROFILE_ENV_JSON",
			k == "HOME", k == "USER", k == "LOGNAME", k == "SHELL", k == "PWD", k == "OLDPWD":
			continue
		case k == "PATH":
			hasPath = true
		}
		out = append(out, kv)
	}
	if !hasPath {
		out = append(out, "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
	}
	out = append(out, "HOME="+workspace, "USER="+user, "LOGNAME="+user, "SHELL=/bin/bash")
	keys := make([]string, 0, len(profile))
	for k := range profile {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		out = append(out, k+"="+profile[k])
	}
	return out
}
