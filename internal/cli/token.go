package cli

import (
	"fmt"
	"text/tabwriter"

	"github.com/spf13/cobra"
)

func newTokenCommand() *cobra.Command {
	var af apiFlags
	cmd := &cobra.Command{
		Use:   "token",
		Short: "Print an access token for the profile's credentials",
		Long: `Exchange the profile's credentials for an access token (POST /api/v1/tokens)
and print it, for use as 'Authorization: Bearer …' with X-IBM-Client-Id.
-o json or -o yaml print the whole answer (access_token, token_type, scope,
expires_in).`,
		Example: `  curl -H "Authorization: Bearer $(sluice token)" -H "X-IBM-Client-Id: $CLIENT_ID" http://127.0.0.1:8080/api/v1/whoami`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := af.client(cmd)
			if err != nil {
				return err
			}
			tok, err := c.Exchange(cmd.Context())
			if err != nil {
				return err
			}
			// The wire form, token revealed: printing it is the point.
			out := struct {
				AccessToken string `json:"access_token"`
				TokenType   string `json:"token_type"`
				Scope       string `json:"scope"`
				ExpiresIn   int64  `json:"expires_in"`
			}{tok.AccessToken.Reveal(), tok.TokenType, tok.Scope, tok.ExpiresIn}
			return render(cmd.OutOrStdout(), af.output, out, func(tw *tabwriter.Writer) {
				fmt.Fprintln(tw, out.AccessToken)
			})
		},
	}
	af.register(cmd, false)
	return cmd
}
