// Command release builds and verifies drover's release (`make release`):
// the .deb and .rpm packages, SHA256SUMS and the signed manifest. See
// internal/release.
//
//	go run ./scripts/release build --version 1.2.0 --bin dist/bin --out dist --key release.key
//	go run ./scripts/release verify --pub release.pub dist
package main

import (
	"context"
	"os"

	"github.com/drover-dev/drover/internal/release"
)

func main() {
	os.Exit(release.Main(context.Background(), os.Args[1:], os.Getenv, os.Stdout, os.Stderr))
}
