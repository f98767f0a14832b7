//go:build !unix

package vendorsim

import "time"

func processCPU() time.Duration { return 0 }
