package config

// browserProfile is the default browser-python profile: Ship and a Gull
// browser runtime in one session, sharing the cargo at /workspace and
// reaching each other by container name (http://ship:<port>/ from the
// browser). Its image, gull:latest, is built by `make image`; where it is
// missing the profile is still listed, and starting a sandbox on it fails
// with an error naming the image.
func browserProfile() profileYAML {
	ship := containerYAML{Name: "ship", Image: "ship:latest", RuntimeType: ptr(RuntimeShip), RuntimePort: ptr(8123),
		Resources:    &resourcesYAML{CPUs: ptr(1.0), Memory: ptr("1g")},
		Capabilities: []string{"python", "shell", "filesystem"}, PrimaryFor: []string{"python", "shell", "filesystem"}}
	gull := containerYAML{Name: "browser", Image: "gull:latest", RuntimeType: ptr(RuntimeGull), RuntimePort: ptr(8115),
		Resources:    &resourcesYAML{CPUs: ptr(1.0), Memory: ptr("1g")},
		Capabilities: []string{"browser"}, PrimaryFor: []string{"browser"}}
	return profileYAML{
		ID:          "browser-python",
		Description: "Python and shell (Ship) with a headless Chromium (Gull) beside them, sharing /workspace",
		Containers:  []containerYAML{ship, gull},
		IdleTimeout: ptr(1800),
		Browser:     ptr(BrowserIsolated),
	}
}
