/**
 * One documented schema of docs/protocol.md (name, prose, examples) and how it is rendered: the
 * examples parsed with the schema, the JSON Schema generated from the zod schema (input side).
 */
import { z } from 'zod';
import { exampleBlock, jsonBlock } from './format.js';
import { JsonObjectSchema } from '../../shared/schemas/task.js';

/** One example payload of a schema section, with its title. */
export interface Example {
  title: string;
  value: unknown;
}

/** One `### Name` section: its schema, prose and examples. */
export interface SchemaDoc {
  name: string;
  schema: z.ZodType;
  /** Markdown paragraphs shown above the JSON Schema. */
  about: string[];
  examples: Example[];
}

/** Types each example against its schema's input at compile time; render() parses them again. */
export function schemaDoc<S extends z.ZodType>(d: {
  name: string;
  schema: S;
  about: string[];
  examples: { title: string; value: z.input<S> }[];
}): SchemaDoc {
  return d;
}

/** Parses every example with its schema; throws naming the schema, example and first bad field. */
export function checkExamples(docs: SchemaDoc[]): void {
  for (const d of docs) {
    if (d.examples.length === 0) throw new Error(`protocol doc: ${d.name} has no example`);
    for (const ex of d.examples) {
      const parsed = d.schema.safeParse(ex.value);
      if (!parsed.success) {
        const issue = parsed.error.issues[0];
        throw new Error(
          `protocol doc: example "${ex.title}" of ${d.name} does not parse: ${issue.path.join('.') || '(root)'}: ${issue.message}`,
        );
      }
    }
  }
}

/**
 * JSON Schemas of every documented schema, input side (what a receiver accepts: fields with a
 * `default` may be omitted). Converted as one registry so a schema used inside another (TaskSpec
 * in Assignment, NodeStatus in NodeView…) becomes a `$ref` to its own section.
 */
export function jsonSchemas(docs: SchemaDoc[]): Record<string, unknown> {
  const registry = z.registry<{ id: string }>();
  for (const d of docs) registry.add(d.schema, { id: d.name });
  const { schemas } = z.toJSONSchema(registry, {
    io: 'input',
    uri: (id) => `${id}.json`,
    // The one custom schema, checked in code (shared/schemas/task.ts): any other stays an error.
    unrepresentable: 'any',
    override: (ctx) => {
      if (ctx.zodSchema === JsonObjectSchema) ctx.jsonSchema.type = 'object';
      else if (ctx.zodSchema._zod.def.type === 'custom')
        throw new Error('protocol doc: a custom zod schema cannot be represented in JSON Schema');
    },
  });
  return schemas;
}

/** The `### Name` section in Markdown: prose, JSON Schema, examples. @throws Error when no JSON Schema was generated for it. */
export function renderSchemaSection(d: SchemaDoc, json: unknown): string {
  if (json === undefined) throw new Error(`protocol doc: no JSON Schema generated for ${d.name}`);
  const parts = [`### ${d.name}`, ...d.about, jsonBlock(json, 2)];
  for (const ex of d.examples) parts.push(`Example (${ex.title}):`, exampleBlock(ex.value));
  return parts.join('\n\n');
}
