/** The program's version, printed by `--version` and sent in `/healthz`. */
export const VERSION = "0.1.0";
