package cli

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"

	"gopkg.in/yaml.v3"
)

// config is the config file: YAML or JSON (JSON is YAML too).
type config struct {
	Endpoint string `yaml:"endpoint"`
	Token    string `yaml:"token"`
}

// loadConfig reads path, or the first of config.yaml, config.yml and
// config.json in dir that exists (none: an empty config).
func loadConfig(path, dir string) (config, error) {
	var c config
	paths := []string{path}
	if path == "" {
		if dir == "" {
			return c, nil
		}
		paths = nil
		for _, n := range []string{"config.yaml", "config.yml", "config.json"} {
			paths = append(paths, filepath.Join(dir, n))
		}
	}
	for _, p := range paths {
		b, err := os.ReadFile(p)
		// Looking in the default place: a missing file (or a "directory"
		// that is a file) means no config.
		if (errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR)) && path == "" {
			continue
		}
		if err != nil {
			return c, fmt.Errorf("config: %w", err)
		}
		if err := yaml.Unmarshal(b, &c); err != nil {
			return c, fmt.Errorf("config %s: %w", p, err)
		}
		return c, nil
	}
	return c, nil
}
