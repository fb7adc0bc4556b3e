// Finding the `model` a request names while its body arrives (body.ts feeds the slices): in a JSON
// object by the skip-scanner (json-scan.ts), in a multipart form by busboy (the field may come after
// the file part). Neither builds the body.
//
// A JSON body is checked against the whole JSON grammar, as it streams by, though only the top-level
// `model` is needed: the hub answers malformed JSON with invalid_json itself, as it always has, rather
// than pass it to a backend whose answer to it is anyone's guess; it costs no more than the scan that
// finding `model` needs anyway (the key may come last, and duplicate keys mean the last one counts).
import busboy from 'busboy';
import { HubError } from '../errors.js';
import type { HeldBody } from './body.js';
import { JsonModelScanner } from './json-scan.js';

export interface FoundModel {
  model: string;
  /** JSON only: the byte range of the `model` value, where a served_model rewrite goes. */
  span?: { start: number; end: number };
  /** JSON only: the top-level "stream" is true (undefined: not a JSON body). */
  stream?: boolean;
}

export interface ModelFinder {
  write(slice: Buffer): void;
  /** After the whole body was written: the model, or invalid_json / model_required. */
  result(body: HeldBody): Promise<FoundModel>;
}

/** Bodies up to this size are parsed once more on error, so that the message is JSON.parse's own. */
const NATIVE_MESSAGE_BYTES = 256 * 1024;

export function jsonModel(): ModelFinder {
  const scanner = new JsonModelScanner();
  return {
    write: (slice) => scanner.write(slice),
    result: async (body) => {
      const scan = scanner.end();
      if (!scan.valid) {
        let message = scan.message;
        if (body.length <= NATIVE_MESSAGE_BYTES) {
          try {
            JSON.parse(body.concat().toString('utf8'));
          } catch (err) {
            message = (err as Error).message;
          }
        }
        throw new HubError('invalid_json', `the request body is not valid JSON (${message}); send a JSON object with a "model" field`);
      }
      if (!scan.object) throw new HubError('invalid_json', 'the request body must be a JSON object with a "model" field');
      const model = scan.span?.model;
      if (model === undefined || model === '') throw modelRequired();
      return { model, span: scan.span, stream: scan.stream };
    },
  };
}

export function multipartModel(contentType: string): ModelFinder {
  let model: string | undefined;
  let failure: Error | undefined;
  let parser: busboy.Busboy | undefined;
  let closed: Promise<void> = Promise.resolve();
  try {
    parser = busboy({ headers: { 'content-type': contentType }, limits: { fieldSize: 1024 } });
    const p = parser;
    closed = new Promise<void>((resolve) => {
      p.on('file', (_name, file) => file.resume());
      p.on('field', (name, value) => { if (name === 'model' && model === undefined) model = value; });
      p.on('error', (err: Error) => { failure ??= err; resolve(); });
      p.on('close', () => resolve());
    });
  } catch (err) {
    failure = err as Error;
  }
  return {
    write: (slice) => { if (!failure) parser!.write(slice); },
    result: async () => {
      if (!failure) parser!.end();
      await closed;
      if (failure) throw new HubError('model_required', `the multipart body could not be read (${failure.message}); send multipart/form-data with a "model" field`, { param: 'model' });
      if (!model) throw modelRequired();
      return { model };
    },
  };
}

const modelRequired = () =>
  new HubError('model_required', 'the request has no "model" (a string naming one of the models at GET /v1/models); add it to the body', { param: 'model' });

/**
 * For a route whose URL names the model (the dashboard's playground): the body is still checked as
 * JSON, but its `model`, if any, does not choose; writeModel puts the right one in once it is known.
 */
export function fixedModel(model: string): ModelFinder {
  const scanner = new JsonModelScanner();
  return {
    write: (slice) => scanner.write(slice),
    result: async () => {
      const scan = scanner.end();
      if (!scan.valid) throw new HubError('invalid_json', `the request body is not valid JSON (${scan.message}); send a JSON object such as {"messages": [...], "stream": true}`);
      if (!scan.object) throw new HubError('invalid_json', 'the request body must be a JSON object such as {"messages": [...], "stream": true}');
      return { model, stream: scan.stream };
    },
  };
}

/** Sets the body's `model` (what the backend is asked for: its served_model, or the model's name). */
export function writeModel(body: HeldBody, model: string): void {
  const fields = JSON.parse(body.concat().toString('utf8')) as Record<string, unknown>;
  fields.model = model;
  body.splice(0, body.length, Buffer.from(JSON.stringify(fields)));
}
