package server

import (
	"bufio"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"unicode/utf8"

	"github.com/shipyard/shipyard/internal/ship/sweep"
)

func (s *Server) handleRoot(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"message": "Ship API is running"})
}

// healthBody is /health's answer. Additive fields: the kernel's start-up
// (kernel.State* values; kernel_error with the reason of a failed start, to
// callers with the token only: it may quote the kernel's output) and the
// process fields (absent when Options.Pressure is not set).
type healthBody struct {
	Status      string `json:"status"`
	Version     string `json:"version"`
	Kernel      string `json:"kernel,omitempty"`
	KernelError string `json:"kernel_error,omitempty"`
	// ProcessesRunning counts running background processes (Bay's idle
	// reclaim spares a sandbox that has one).
	ProcessesRunning int `json:"processes_running"`
	*sweep.Stats
}

// maxHealthError bounds kernel_error (a start error quotes the kernel's output).
const maxHealthError = 1024

// handleHealth answers 200 once Ship serves: shell, files and terminal work
// then. The kernel may still be starting, or have failed to start; python
// calls wait for it or report that, so neither makes Ship unhealthy.
func (s *Server) handleHealth(w http.ResponseWriter, r *http.Request) {
	body := healthBody{Status: "healthy", Version: Version, ProcessesRunning: s.opt.Processes.Running()}
	if s.opt.Kernel != nil {
		st := s.opt.Kernel.State()
		body.Kernel = st.State
		if st.Error != "" && s.hasToken(r) {
			body.KernelError = truncateUTF8(st.Error, maxHealthError)
		}
	}
	if s.opt.Pressure != nil {
		st := s.opt.Pressure()
		body.Stats = &st
	}
	writeJSON(w, http.StatusOK, body)
}

// truncateUTF8 cuts s to at most n bytes on a rune boundary, marking the cut.
func truncateUTF8(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := n
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

func (s *Server) handleStat(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"service": "ship", "version": Version, "status": "running", "author": "AstrBot Team"})
}

func orNil(s string) any {
	if s == "" {
		return nil
	}
	return s
}

func (s *Server) handleMeta(w http.ResponseWriter, r *http.Request) {
	b := s.opt.Build
	image := b.Image
	if image == "" {
		image = "ship:default"
	}
	skills := s.opt.Skills
	if skills == nil {
		skills = []Skill{}
	}
	terminal := map[string]any{"operations": []string{"ws"}, "protocol": "websocket", "endpoints": map[string]string{"ws": "/term/ws"}}
	caps := map[string]any{
		"filesystem": map[string]any{
			"operations": []string{"create", "read", "write", "edit", "delete", "list", "upload", "download"},
			"path_mode":  "relative_to_mount",
			"endpoints": map[string]string{"create": "/fs/create_file", "read": "/fs/read_file", "write": "/fs/write_file",
				"edit": "/fs/edit_file", "delete": "/fs/delete_file", "list": "/fs/list_dir", "upload": "/fs/upload", "download": "/fs/download"},
		},
		"shell": map[string]any{
			"operations": []string{"exec", "processes"},
			"endpoints":  map[string]string{"exec": "/shell/exec", "processes": "/shell/processes"},
		},
		"python": map[string]any{
			"operations": []string{"exec"}, "engine": "ipython",
			"endpoints": map[string]string{"exec": "/ipython/exec"},
		},
	}
	if s.opt.Terminal != nil {
		caps["terminal"] = terminal
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"runtime": map[string]any{"name": "ship", "version": Version, "api_version": "v1",
			"build": map[string]any{"image": image, "image_digest": orNil(b.ImageDigest), "git_sha": orNil(b.GitSHA)}},
		"workspace":       map[string]string{"mount_path": s.opt.WorkspaceName},
		"capabilities":    caps,
		"built_in_skills": skills,
	})
}

// LoadSkills lists the skills under dir (one directory per skill, each with a
// SKILL.md whose YAML front matter gives name and description, read as naive
// "key: value" lines with quotes stripped, as upstream).
func LoadSkills(dir string) []Skill {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return []Skill{}
	}
	out := []Skill{}
	for _, e := range ents {
		if !e.IsDir() {
			continue
		}
		p := filepath.Join(dir, e.Name(), "SKILL.md")
		sk := Skill{Name: e.Name(), Path: p}
		f, err := os.Open(p)
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(f)
		first := true
		for sc.Scan() {
			line := strings.TrimSpace(sc.Text())
			if first {
				first = false
				if line != "---" {
					break
				}
				continue
			}
			if line == "---" {
				break
			}
			k, v, ok := strings.Cut(line, ":")
			if !ok {
				continue
			}
			v = strings.Trim(strings.TrimSpace(v), `"'`)
			switch strings.TrimSpace(k) {
			case "name":
				sk.Name = v
			case "description":
				sk.Description = v
			}
		}
		f.Close()
		out = append(out, sk)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}
