package plan

// commandProbe checks a command probe (what names it: "a command
// probe", "a pre-restart check"): exactly one of command (a program the
// agent runs only if its own configuration allows command probes) and
// artifact (a signed artifact, verified as scripts are); args go with
// artifact only.
func (v *validator) commandProbe(pp string, pr *Probe, what string) {
	_, hasCmd := v.d.pos[pp+".command"]
	_, hasArt := v.d.pos[pp+".artifact"]
	switch {
	case hasCmd && hasArt:
		v.keyErrf(pp+".artifact", "%s runs either command or a signed artifact, not both", what)
	case !hasCmd && !hasArt:
		v.errf(pp, "%s needs command (a list: [\"/usr/bin/check\", \"--quick\"], run only by agents started with --allow-command-probes) or artifact (a signed artifact)", what)
	case hasCmd:
		if v.written(pp+".command") && (len(pr.Command) == 0 || pr.Command[0] == "") {
			v.errf(pp+".command", "command must name a program")
		}
		if _, ok := v.d.pos[pp+".args"]; ok {
			v.keyErrf(pp+".args", "args go with artifact; put a command's arguments in its list")
		}
	case hasArt:
		v.nonEmpty(pp+".artifact", pr.Artifact, "artifact")
	}
}
