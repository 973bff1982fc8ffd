package main

import (
	"testing"
	"time"
)

func TestParseConfig(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		check   func(config) bool
		wantErr bool
	}{
		{name: "defaults", check: func(c config) bool {
			return c.Port == "8123" && c.Workspace == "/workspace" && c.SkillsDir == "/app/skills" && c.UID == 1000 &&
				c.DefaultTimeout == 30*time.Second && c.Token == "" && !c.ProfileEnvSet && c.MaxUploadBytes == 1<<30 &&
				c.MaxOutputBytes == 1<<20 && c.MaxResultBytes == 4<<20 && c.Reclaim == "auto"
		}},
		{name: "reclaim and result cap", env: map[string]string{"SHIP_RECLAIM": "off", "SHIP_MAX_RESULT_BYTES": "2097152"},
			check: func(c config) bool { return c.Reclaim == "off" && c.MaxResultBytes == 2<<20 }},
		{name: "bad reclaim", env: map[string]string{"SHIP_RECLAIM": "sometimes"}, wantErr: true},
		{name: "env", env: map[string]string{"SHIP_PORT": "9000", "SHIP_TOKEN": "t", "SHIP_EXEC_TIMEOUT": "45",
			"SHIP_MAX_BACKGROUND": "3", "BAY_PROFILE_ENV": "A=1", "BAY_PROFILE_ENV_JSON": `{"B":"2"}`},
			check: func(c config) bool {
				return c.Port == "9000" && c.Token == "t" && c.DefaultTimeout == 45*time.Second && c.MaxBackground == 3 &&
					c.ProfileEnvSet && c.ProfileEnv == "A=1" && c.ProfileEnvJSONSet
			}},
		{name: "flag beats env", args: []string{"-port", "7000", "-exec-timeout", "1m"}, env: map[string]string{"SHIP_PORT": "9000"},
			check: func(c config) bool { return c.Port == "7000" && c.DefaultTimeout == time.Minute }},
		{name: "empty env keeps default", env: map[string]string{"SHIP_PORT": ""}, check: func(c config) bool { return c.Port == "8123" }},
		{name: "bad duration", env: map[string]string{"SHIP_EXEC_TIMEOUT": "soon"}, wantErr: true},
		{name: "bad number", env: map[string]string{"SHIP_MAX_UPLOAD_BYTES": "lots"}, wantErr: true},
		{name: "unknown flag", args: []string{"-nope"}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			getenv := func(k string) (string, bool) { v, ok := tt.env[k]; return v, ok }
			c, err := parseConfig(tt.args, getenv)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err %v", err)
			}
			if err == nil && !tt.check(c) {
				t.Fatalf("%+v", c)
			}
		})
	}
}
