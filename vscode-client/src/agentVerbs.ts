// The agent kit's session verbs (`sandkit run --prompt/--continue/--resume`) from the
// palette: which command runs which verb, and why one cannot run. The messages are
// protocol.ts's.
import type { AgentVerbsResult, RunAgentVerbParams } from "./protocol";

export type SessionVerb = RunAgentVerbParams["verb"];

/** The palette's command for each verb. */
export const VERB_COMMANDS: Record<string, SessionVerb> = {
  "sandkit.ui.askAgent": "prompt",
  "sandkit.ui.continueAgent": "continue",
  "sandkit.ui.resumeAgent": "resume",
};

/** Why a verb cannot run, naming the kit; undefined when it is declared. */
export function undeclared(verb: SessionVerb, declared: AgentVerbsResult): string | undefined {
  if (declared.verbs.includes(verb)) {
    return undefined;
  }
  if (declared.verbs.length === 0) {
    return `the agent kit '${declared.kit}' declares no session verbs (agent-sessions@1), so its agent cannot take a prompt, continue or resume a session`;
  }
  return `the agent kit '${declared.kit}' declares no '${verb}' session verb; it declares ${declared.verbs.map((v) => `'${v}'`).join(", ")}`;
}
