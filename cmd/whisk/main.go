// Command whisk runs Python web applications in production. See
// `whisk help` and docs/ for more.
package main

import (
	"context"
	"os"

	"github.com/whiskserver/whisk/internal/cli"
)

func main() {
	os.Exit(cli.Run(context.Background(), os.Args[1:], os.Stdout, os.Stderr))
}
