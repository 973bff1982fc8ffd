package docker

import "github.com/docker/docker/client"

// Unreachable reports whether err says the Docker Engine could not be reached
// (socket refused or missing, connection dropped): the engine is down or
// restarting, not refusing the request.
func Unreachable(err error) bool { return client.IsErrConnectionFailed(err) }
