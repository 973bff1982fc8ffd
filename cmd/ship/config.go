package main

import (
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// config is every setting of Ship; each has a flag and an environment
// variable (the flag wins over the variable, the variable over the default).
type config struct {
	Host, Port           string
	Token                string
	Workspace, SkillsDir string
	User                 string
	UID, GID             int
	KernelCmd            string
	DefaultTimeout       time.Duration
	MaxTimeout           time.Duration
	KernelStartTimeout   time.Duration
	KernelQueueTimeout   time.Duration
	KernelInterruptGrace time.Duration
	ShutdownTimeout      time.Duration
	MaxOutputBytes       int
	MaxResultBytes       int
	Reclaim              string
	ProcessOutputBytes   int
	MaxBackground        int
	KeepFinished         int
	MaxTerminals         int
	MaxBodyBytes         int64
	MaxUploadBytes       int64
	MaxReadBytes         int64
	LogLevel, LogFormat  string
	Image, ImageDigest   string
	GitSHA               string
	ProfileEnv           string
	ProfileEnvSet        bool
	ProfileEnvJSON       string
	ProfileEnvJSONSet    bool
}

func parseConfig(args []string, getenv func(string) (string, bool)) (config, error) {
	var c config
	fs := flag.NewFlagSet("ship", flag.ContinueOnError)
	env := func(name, def string) string {
		if v, ok := getenv(name); ok && v != "" {
			return v
		}
		return def
	}
	var errs []string
	dur := func(p *time.Duration, name, envName, def, help string) {
		d, err := time.ParseDuration(normDuration(env(envName, def)))
		if err != nil {
			errs = append(errs, fmt.Sprintf("%s: %v", envName, err))
		}
		fs.DurationVar(p, name, d, help+" ($"+envName+")")
	}
	num := func(p *int, name, envName string, def int, help string) {
		v, err := strconv.Atoi(env(envName, strconv.Itoa(def)))
		if err != nil {
			errs = append(errs, fmt.Sprintf("%s: %v", envName, err))
		}
		fs.IntVar(p, name, v, help+" ($"+envName+")")
	}
	num64 := func(p *int64, name, envName string, def int64, help string) {
		v, err := strconv.ParseInt(env(envName, strconv.FormatInt(def, 10)), 10, 64)
		if err != nil {
			errs = append(errs, fmt.Sprintf("%s: %v", envName, err))
		}
		fs.Int64Var(p, name, v, help+" ($"+envName+")")
	}
	str := func(p *string, name, envName, def, help string) {
		fs.StringVar(p, name, env(envName, def), help+" ($"+envName+")")
	}
	str(&c.Host, "host", "SHIP_HOST", "0.0.0.0", "listen address")
	str(&c.Port, "port", "SHIP_PORT", "8123", "listen port")
	str(&c.Token, "token", "SHIP_TOKEN", "", "bearer token required on every route but /health (empty: no auth)")
	str(&c.Workspace, "workspace", "SHIP_WORKSPACE", "/workspace", "workspace directory (the cargo volume)")
	str(&c.SkillsDir, "skills-dir", "SHIP_SKILLS_DIR", "/app/skills", "built-in skills, copied to <workspace>/skills/<name> at start")
	str(&c.User, "user", "SHIP_USER", "shipyard", "sandbox user name (USER/LOGNAME of user code)")
	num(&c.UID, "uid", "SHIP_UID", 1000, "uid user code runs as when Ship runs as root")
	num(&c.GID, "gid", "SHIP_GID", 1000, "gid user code runs as when Ship runs as root")
	str(&c.KernelCmd, "kernel-cmd", "SHIP_KERNEL_CMD", "", "kernel command line, split on spaces, {connection_file} substituted (empty: python3 running ipykernel_launcher as -m does, with less work at start: see kernel.Launcher)")
	dur(&c.DefaultTimeout, "exec-timeout", "SHIP_EXEC_TIMEOUT", "30s", "default python/shell timeout")
	dur(&c.MaxTimeout, "max-exec-timeout", "SHIP_MAX_EXEC_TIMEOUT", "1h", "upper bound of any requested timeout")
	dur(&c.KernelStartTimeout, "kernel-start-timeout", "SHIP_KERNEL_START_TIMEOUT", "60s", "bound on one kernel start")
	dur(&c.KernelQueueTimeout, "kernel-queue-timeout", "SHIP_KERNEL_QUEUE_TIMEOUT", "60s", "how long an execution waits for the one running")
	dur(&c.KernelInterruptGrace, "kernel-interrupt-grace", "SHIP_KERNEL_INTERRUPT_GRACE", "5s", "wait after interrupting a timed-out cell before restarting the kernel")
	dur(&c.ShutdownTimeout, "shutdown-timeout", "SHIP_SHUTDOWN_TIMEOUT", "10s", "graceful shutdown bound")
	num(&c.MaxOutputBytes, "max-output-bytes", "SHIP_MAX_OUTPUT_BYTES", 1<<20, "cap on captured output per stream / per cell (python: the text, the error and each rich output)")
	num(&c.MaxResultBytes, "max-result-bytes", "SHIP_MAX_RESULT_BYTES", 4<<20, "cap on all output of one python execution together (text, images, rich outputs)")
	str(&c.Reclaim, "reclaim", "SHIP_RECLAIM", "auto", "kill stray processes when a spawn fails for lack of process slots: on, off, or auto (on when Ship runs under the container's init)")
	num(&c.ProcessOutputBytes, "process-output-bytes", "SHIP_PROCESS_OUTPUT_BYTES", 64<<10, "ring buffer per stream of a background process")
	num(&c.MaxBackground, "max-background", "SHIP_MAX_BACKGROUND", 64, "running background processes allowed")
	num(&c.KeepFinished, "keep-finished", "SHIP_KEEP_FINISHED", 16, "finished background processes kept readable")
	num(&c.MaxTerminals, "max-terminals", "SHIP_MAX_TERMINALS", 16, "concurrent terminals allowed")
	num64(&c.MaxBodyBytes, "max-body-bytes", "SHIP_MAX_BODY_BYTES", 64<<20, "cap on JSON request bodies")
	num64(&c.MaxUploadBytes, "max-upload-bytes", "SHIP_MAX_UPLOAD_BYTES", 1<<30, "cap on one upload")
	num64(&c.MaxReadBytes, "max-read-bytes", "SHIP_MAX_READ_BYTES", 32<<20, "cap on /fs/read_file (bigger: /fs/download)")
	str(&c.LogLevel, "log-level", "SHIP_LOG_LEVEL", "info", "debug, info, warn or error")
	str(&c.LogFormat, "log-format", "SHIP_LOG_FORMAT", "auto", "auto (json; text on a terminal), json or text")
	str(&c.Image, "image", "SHIP_IMAGE", "", "image name reported by /meta")
	str(&c.ImageDigest, "image-digest", "SHIP_IMAGE_DIGEST", "", "image digest reported by /meta")
	str(&c.GitSHA, "git-sha", "GIT_SHA", "", "source revision reported by /meta")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	switch c.Reclaim {
	case "auto", "on", "off":
	default:
		errs = append(errs, fmt.Sprintf("SHIP_RECLAIM: %q is not auto, on or off", c.Reclaim))
	}
	if len(errs) > 0 {
		return c, fmt.Errorf("bad settings: %s", strings.Join(errs, "; "))
	}
	c.ProfileEnv, c.ProfileEnvSet = getenv("BAY_PROFILE_ENV")
	c.ProfileEnvJSON, c.ProfileEnvJSONSet = getenv("BAY_PROFILE_ENV_JSON")
	return c, nil
}

// normDuration accepts plain numbers as seconds ("30" = 30s).
func normDuration(s string) string {
	if _, err := strconv.ParseFloat(s, 64); err == nil {
		return s + "s"
	}
	return s
}

func lookupEnv(name string) (string, bool) { return os.LookupEnv(name) }

func errHelp() error { return flag.ErrHelp }
