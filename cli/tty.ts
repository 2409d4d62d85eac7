/**
 * What the CLI may draw on a stream: colour only on a terminal and never with `NO_COLOR` set to a
 * non-empty value (https://no-color.org: "should check for a NO_COLOR environment variable that,
 * when present and not an empty string, prevents the addition of ANSI color"), nor on `TERM=dumb`;
 * in-place redraws (`\r`, clear line) only on a terminal.
 */

/** True when `stream` is a terminal (redraws in place make sense there, not in a file or pipe). */
export function isTerminal(stream: NodeJS.WriteStream = process.stderr): boolean {
  return Boolean(stream.isTTY);
}

/** True when ANSI colour may be written to `stream` (module comment). */
export function colorAllowed(stream: NodeJS.WriteStream = process.stdout, env: NodeJS.ProcessEnv = process.env): boolean {
  if (env.NO_COLOR !== undefined && env.NO_COLOR !== '') return false;
  if (env.TERM === 'dumb') return false;
  return isTerminal(stream);
}

/** `text` in bold / cyan when colour is allowed on `stream`, else as is. */
export const bold = (text: string, stream?: NodeJS.WriteStream) => (colorAllowed(stream) ? `\x1b[1m${text}\x1b[0m` : text);
export const cyan = (text: string, stream?: NodeJS.WriteStream) => (colorAllowed(stream) ? `\x1b[36m${text}\x1b[0m` : text);

/** Carriage return and "erase the whole line" (ECMA-48 EL 2): what a redraw in place starts with. */
export const REDRAW = '\r\x1b[2K';

/**
 * One line of status that changes (a task waiting in the queue): on a terminal it is redrawn in
 * place; elsewhere (a log file, a pipe) only its first text is printed, once, so a log gets one
 * line instead of one a second.
 */
export class StatusLine {
  private shown: string | undefined;

  constructor(
    private readonly stream: NodeJS.WriteStream = process.stderr,
    private readonly tty = isTerminal(stream),
  ) {}

  /** Shows `text` (one line, no newline): redrawn on a terminal, printed the first time elsewhere. */
  show(text: string): void {
    if (text === this.shown) return;
    if (this.tty) this.stream.write(`${REDRAW}${text}`);
    else if (this.shown === undefined) this.stream.write(`${text}\n`);
    this.shown = text;
  }

  /** Ends the status: on a terminal the line stays as it was last drawn and the cursor moves below it. */
  end(): void {
    if (this.shown !== undefined && this.tty) this.stream.write('\n');
    this.shown = undefined;
  }

  /** True while a status is shown (until `end`). */
  get active(): boolean {
    return this.shown !== undefined;
  }
}
