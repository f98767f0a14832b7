// Package build holds checks of the container build (../Dockerfile) that run
// without a Docker engine: the Go build the Dockerfile performs, the binary
// it produces, and the image's user, volume, config and port.
package build
