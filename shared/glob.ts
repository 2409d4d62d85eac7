/**
 * Globs as anchored RegExps, for the patterns users write in config: image allowlists
 * (`allowedImages`) and the Ollama placement file's model names.
 */

/**
 * `pattern` as a RegExp matching the whole string: `*` is any run of characters; with
 * `anyChar`, `?` is any one character (else a literal `?`). Every other character is literal.
 */
export function globToRegExp(pattern: string, opts: { anyChar?: boolean } = {}): RegExp {
  const parts = pattern.split('*').map((part) => {
    const literal = part.replace(/[.+?^${}()|[\]\\]/g, '\\$&');
    return opts.anyChar ? literal.replace(/\\\?/g, '.') : literal;
  });
  return new RegExp(`^${parts.join('.*')}$`);
}
