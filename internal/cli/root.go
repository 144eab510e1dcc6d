// Package cli owns the sluice command line: the cobra command tree, flag and
// environment parsing, and turning errors into one-line messages and exit
// codes. It holds no business logic; each verb calls the package that owns
// the work.
package cli

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"
)

// newRootCommand builds the whole command tree. Every subcommand is listed
// here so a reader sees the CLI's surface in one place.
func newRootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:           "sluice",
		Short:         "Sluice: a self-hosted integration platform",
		SilenceUsage:  true,
		SilenceErrors: true,
		// --version prints the same build information as `sluice version`.
		Version: readBuildInfo().String(),
	}
	root.SetVersionTemplate("{{.Version}}\n")
	// Flags bound to an environment variable (bindEnv) take its value
	// when the command line does not set them, in every command.
	root.PersistentPreRunE = func(cmd *cobra.Command, _ []string) error { return applyEnv(cmd) }
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return &usageError{err: err, cmd: c.CommandPath()}
	})
	root.AddCommand(
		newServeCommand(),
		newVersionCommand(),
		newMasterKeyCommand(),
		newBackupCommand(), newRestoreCommand(),
		newSigningKeyCommand(),
		newFlowCommand(),
		newBarCommand(),
		newRuntimeCommand(),
		newInstancesCommand(),
		newLoginCommand(),
		newTokenCommand(),
		newAPIKeysCommand(),
		newServiceIDsCommand(),
		newCredentialsCommand(),
		newAppsCommand(),
		newUsersCommand(),
		newAuditCommand(),
		newConfigurationsCommand(),
		newAPIsCommand(), newPlansCommand(), newSubscriptionsCommand(),
		newRuntimesCommand(),
		newTracesCommand(),
		newFederationAgentCommand(),
	)
	return root
}

// Execute runs the command line and returns the process exit code.
func Execute(args []string) int {
	root := newRootCommand()
	root.SetArgs(args)
	cmd, err := root.ExecuteC()
	if err == nil {
		return 0
	}
	var ee *ExitError
	if errors.As(err, &ee) {
		if ee.Err != nil {
			fmt.Fprintf(os.Stderr, "sluice: %v\n", ee.Err)
		}
		return ee.Code
	}
	var ue *usageError
	if errors.As(err, &ue) || strings.HasPrefix(err.Error(), "unknown command") {
		fmt.Fprintf(os.Stderr, "sluice: %v (see '%s --help')\n", err, cmd.CommandPath())
		return 2
	}
	fmt.Fprintf(os.Stderr, "sluice: %v\n", err)
	return 1
}

// usageError marks a mistake in the command line itself (exit code 2).
type usageError struct {
	err error
	cmd string
}

func (e *usageError) Error() string { return e.err.Error() }

// ExitError carries an exit code other than the default 1 through cobra.
type ExitError struct {
	Code int
	Err  error
}

func (e *ExitError) Error() string { return e.Err.Error() }
func (e *ExitError) Unwrap() error { return e.Err }
