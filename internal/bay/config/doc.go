// Package config is Bay's configuration: one typed struct, loaded and validated
// once at start-up and passed to whoever needs it (no package-level state).
//
// Bay reads the upstream Shipyard-Neo config.yaml unchanged (spec/COMPAT.md,
// policy 5): every upstream key and default is here, under the same name.
// Keys that are ours are additive, have defaults, and are marked "ours" in the
// field comments and in config.example.yaml at the repository root.
//
// # Where values come from (later wins)
//
//  1. Built-in defaults (Default).
//  2. The YAML file: $BAY_CONFIG_FILE (must exist when set), else ./config.yaml,
//     else /etc/bay/config.yaml, else none. A file's `profiles` list replaces
//     the default profiles entirely; every other section is merged key by key
//     over the defaults. A YAML null keeps the default.
//  3. Environment variables BAY_<SECTION>__<KEY>[__<KEY>...], e.g.
//     BAY_SERVER__PORT=9000, BAY_DRIVER__DOCKER__HOST_ADDRESS=10.0.0.5,
//     BAY_GC__INSTANCE_ID=bay-1, BAY_BROWSER_AUTO_RELEASE_ENABLED=false.
//     A whole section may also be given as a JSON object (BAY_GC='{"enabled":false}');
//     its individual keys are then applied on top. Profiles come as a JSON list
//     in BAY_PROFILES and replace the file's profiles.
//  4. BAY_API_KEY overrides security.api_key.
//
// ENVIRONMENT VARIABLES WIN OVER THE FILE. This is the usual convention and it
// is deliberately unlike upstream, where file values win and the environment
// only fills keys the file leaves out.
//
// Names are case-insensitive: Load tries the upper-case name and then the
// lower-case one; pass EnvLookup(os.Environ()) to match any spelling.
// Environment values are strings parsed to the key's type: booleans accept
// true/false/1/0/yes/no/on/off, lists accept a JSON array or a comma-separated
// string. An empty value unsets a non-string key (the file or default stays)
// and sets a string key to "". UnusedEnv reports BAY_* variables that match no
// key (e.g. BAY_SERVER_PORT with one underscore).
//
// Other variables: BAY_CONFIG_FILE (the file), BAY_DATA_DIR (Config.DataDir,
// default "."; the default SQLite database lives there), HOSTNAME (default for
// gc.instance_id, else "bay").
//
// # Validation
//
// Unknown top-level keys are an error naming the key. Unknown nested keys are
// ignored, as upstream does, and reported in Config.Warnings for the caller
// to log. Every value is checked at load; all problems are returned together
// (errors.Join), each message starting with the key, e.g.
// "server.port: must be 1..65535".
//
// # Profiles
//
// Profiles are normalized at load into Config.Profiles (by id) and
// Config.ProfileOrder (config order, for /v1/profiles). A profile written with
// the legacy single-container keys (image, resources, capabilities, ...)
// becomes one container named "primary". See Profile.
package config
