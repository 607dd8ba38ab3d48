import protobuf from 'protobufjs'
import type { CursorEntry, HranaError, HranaStmtResult, HranaValue } from './hrana.js'

/**
 * Hrana 3's protobuf encoding (`/v3-protobuf/*` over HTTP, the `hrana3-protobuf` WebSocket
 * subprotocol), as a codec only: a decoded message becomes the JSON encoding's shape (the
 * objects `schemas.ts` validates and `hrana.ts` runs), and a response in that shape is encoded
 * back. So both encodings share one implementation of the requests, streams, limits and guard.
 *
 * The messages below are written from the spec's "Protobuf schema" section
 * (https://github.com/tursodatabase/libsql/blob/main/docs/HRANA_3_SPEC.md), with one addition:
 * `Error.extended_code` (field 3), which carries SQLite's extended code as the JSON encoding's
 * `extended_code` does. Peers skip fields they do not know, as protobuf has them.
 */
const SCHEMA = `
syntax = "proto3";
package hrana;

message Error {
  string message = 1;
  optional string code = 2;
  optional string extended_code = 3;
}

message Stmt {
  optional string sql = 1;
  optional int32 sql_id = 2;
  repeated Value args = 3;
  repeated NamedArg named_args = 4;
  optional bool want_rows = 5;
}

message NamedArg {
  string name = 1;
  Value value = 2;
}

message StmtResult {
  repeated Col cols = 1;
  repeated Row rows = 2;
  uint64 affected_row_count = 3;
  optional sint64 last_insert_rowid = 4;
}

message Col {
  optional string name = 1;
  optional string decltype = 2;
}

message Row {
  repeated Value values = 1;
}

message Batch {
  repeated BatchStep steps = 1;
}

message BatchStep {
  optional BatchCond condition = 1;
  Stmt stmt = 2;
}

message BatchCond {
  oneof cond {
    uint32 step_ok = 1;
    uint32 step_error = 2;
    BatchCond not = 3;
    CondList and = 4;
    CondList or = 5;
    IsAutocommit is_autocommit = 6;
  }
  message CondList {
    repeated BatchCond conds = 1;
  }
  message IsAutocommit {}
}

message BatchResult {
  map<uint32, StmtResult> step_results = 1;
  map<uint32, Error> step_errors = 2;
}

message CursorEntry {
  oneof entry {
    StepBeginEntry step_begin = 1;
    StepEndEntry step_end = 2;
    StepErrorEntry step_error = 3;
    Row row = 4;
    Error error = 5;
  }
}

message StepBeginEntry {
  uint32 step = 1;
  repeated Col cols = 2;
}

message StepEndEntry {
  uint64 affected_row_count = 1;
  optional sint64 last_insert_rowid = 2;
}

message StepErrorEntry {
  uint32 step = 1;
  Error error = 2;
}

message DescribeResult {
  repeated DescribeParam params = 1;
  repeated DescribeCol cols = 2;
  bool is_explain = 3;
  bool is_readonly = 4;
}

message DescribeParam {
  optional string name = 1;
}

message DescribeCol {
  string name = 1;
  optional string decltype = 2;
}

message Value {
  oneof value {
    Null null = 1;
    sint64 integer = 2;
    double float = 3;
    string text = 4;
    bytes blob = 5;
  }
  message Null {}
}

message Empty {}

message ExecuteResp { StmtResult result = 1; }
message BatchResp { BatchResult result = 1; }
message DescribeResp { DescribeResult result = 1; }
message GetAutocommitResp { bool is_autocommit = 1; }
message FetchCursorResp {
  repeated CursorEntry entries = 1;
  bool done = 2;
}

// Hrana over HTTP.
message PipelineReqBody {
  optional string baton = 1;
  repeated StreamRequest requests = 2;
}

message PipelineRespBody {
  optional string baton = 1;
  optional string base_url = 2;
  repeated StreamResult results = 3;
}

message StreamResult {
  oneof result {
    StreamResponse ok = 1;
    Error error = 2;
  }
}

message CursorReqBody {
  optional string baton = 1;
  Batch batch = 2;
}

message CursorRespBody {
  optional string baton = 1;
  optional string base_url = 2;
}

message StreamRequest {
  oneof request {
    Empty close = 1;
    StmtReq execute = 2;
    BatchReqBody batch = 3;
    SqlRef sequence = 4;
    SqlRef describe = 5;
    StoreSqlReq store_sql = 6;
    CloseSqlReq close_sql = 7;
    Empty get_autocommit = 8;
  }
}

message StmtReq { Stmt stmt = 1; }
message BatchReqBody { Batch batch = 1; }
message SqlRef {
  optional string sql = 1;
  optional int32 sql_id = 2;
}
message StoreSqlReq {
  int32 sql_id = 1;
  string sql = 2;
}
message CloseSqlReq { int32 sql_id = 1; }

message StreamResponse {
  oneof response {
    Empty close = 1;
    ExecuteResp execute = 2;
    BatchResp batch = 3;
    Empty sequence = 4;
    DescribeResp describe = 5;
    Empty store_sql = 6;
    Empty close_sql = 7;
    GetAutocommitResp get_autocommit = 8;
  }
}

// Hrana over WebSocket.
message ClientMsg {
  oneof msg {
    HelloMsg hello = 1;
    RequestMsg request = 2;
  }
}

message HelloMsg { optional string jwt = 1; }

message RequestMsg {
  int32 request_id = 1;
  oneof request {
    StreamIdReq open_stream = 2;
    StreamIdReq close_stream = 3;
    WsExecuteReq execute = 4;
    WsBatchReq batch = 5;
    OpenCursorReq open_cursor = 6;
    CursorIdReq close_cursor = 7;
    FetchCursorReq fetch_cursor = 8;
    WsSqlReq sequence = 9;
    WsSqlReq describe = 10;
    StoreSqlReq store_sql = 11;
    CloseSqlReq close_sql = 12;
    StreamIdReq get_autocommit = 13;
  }
}

message StreamIdReq { int32 stream_id = 1; }
message CursorIdReq { int32 cursor_id = 1; }
message WsExecuteReq {
  int32 stream_id = 1;
  Stmt stmt = 2;
}
message WsBatchReq {
  int32 stream_id = 1;
  Batch batch = 2;
}
message OpenCursorReq {
  int32 stream_id = 1;
  int32 cursor_id = 2;
  Batch batch = 3;
}
message FetchCursorReq {
  int32 cursor_id = 1;
  uint32 max_count = 2;
}
message WsSqlReq {
  int32 stream_id = 1;
  optional string sql = 2;
  optional int32 sql_id = 3;
}

message ServerMsg {
  oneof msg {
    Empty hello_ok = 1;
    HelloErrorMsg hello_error = 2;
    ResponseOkMsg response_ok = 3;
    ResponseErrorMsg response_error = 4;
  }
}

message HelloErrorMsg { Error error = 1; }

message ResponseOkMsg {
  int32 request_id = 1;
  oneof response {
    Empty open_stream = 2;
    Empty close_stream = 3;
    ExecuteResp execute = 4;
    BatchResp batch = 5;
    Empty open_cursor = 6;
    Empty close_cursor = 7;
    FetchCursorResp fetch_cursor = 8;
    Empty sequence = 9;
    DescribeResp describe = 10;
    Empty store_sql = 11;
    Empty close_sql = 12;
    GetAutocommitResp get_autocommit = 13;
  }
}

message ResponseErrorMsg {
  int32 request_id = 1;
  Error error = 2;
}
`

const root = protobuf.parse(SCHEMA, { keepCase: true }).root
const type = (name: string) => root.lookupType(`hrana.${name}`)
const types = {
  PipelineReqBody: type('PipelineReqBody'),
  PipelineRespBody: type('PipelineRespBody'),
  CursorReqBody: type('CursorReqBody'),
  CursorRespBody: type('CursorRespBody'),
  CursorEntry: type('CursorEntry'),
  ClientMsg: type('ClientMsg'),
  ServerMsg: type('ServerMsg'),
}

/** The content type of both directions of `/v3-protobuf/*`. */
export const PROTOBUF_CONTENT_TYPE = 'application/x-protobuf'

/** Input that is not a message of the expected type (bad wire data). */
export class ProtobufDecodeError extends Error {
  override readonly name = 'ProtobufDecodeError'
}

/** A decoded message: protobufjs's objects, read field by field below. */
type Decoded = Record<string, unknown>

/** Decodes a `kind` message and shapes it; what fails either way is the input's fault (a `ProtobufDecodeError`). */
function decode(kind: protobuf.Type, bytes: Uint8Array, what: string, shape: (message: Decoded) => Decoded): Decoded {
  try {
    return shape(kind.decode(bytes) as unknown as Decoded)
  } catch (error) {
    throw new ProtobufDecodeError(`The body is not a valid Hrana ${what} protobuf message: ${(error as Error).message}`)
  }
}

/** Whether a field is set (protobufjs gives unset optional fields a `null` default on the prototype). */
function has(message: Decoded, field: string): boolean {
  return Object.prototype.hasOwnProperty.call(message, field) && message[field] !== null && message[field] !== undefined
}

/** The name of the set field of a `oneof` (protobufjs's virtual field), or undefined. */
function oneof(message: Decoded, name: string): string | undefined {
  const value = message[name]
  return typeof value === 'string' ? value : undefined
}

function num(value: unknown): number {
  // int32/uint32 are numbers; 64-bit fields are `Long`s.
  return typeof value === 'number' ? value : Number(String(value))
}

// ---- Requests: protobuf → the JSON encoding's shape ----

function valueFrom(message: Decoded): HranaValue | Record<string, never> {
  switch (oneof(message, 'value')) {
    case 'null':
      return { type: 'null' }
    case 'integer':
      return { type: 'integer', value: String(message.integer) }
    case 'float':
      return { type: 'float', value: message.float as number }
    case 'text':
      return { type: 'text', value: message.text as string }
    case 'blob':
      return { type: 'blob', base64: Buffer.from(message.blob as Uint8Array).toString('base64') }
    default:
      // No value set: the schema's check names the field (`type` missing).
      return {}
  }
}

function stmtFrom(message: Decoded | undefined): Decoded | undefined {
  if (!message) return undefined
  return {
    ...(has(message, 'sql') ? { sql: message.sql } : {}),
    ...(has(message, 'sql_id') ? { sql_id: message.sql_id } : {}),
    args: (message.args as Decoded[]).map(valueFrom),
    named_args: (message.named_args as Decoded[]).map((arg) => ({ name: arg.name, value: arg.value ? valueFrom(arg.value as Decoded) : {} })),
    ...(has(message, 'want_rows') ? { want_rows: message.want_rows } : {}),
  }
}

function condFrom(message: Decoded): Decoded {
  switch (oneof(message, 'cond')) {
    case 'step_ok':
      return { type: 'ok', step: message.step_ok }
    case 'step_error':
      return { type: 'error', step: message.step_error }
    case 'not':
      return { type: 'not', cond: condFrom(message.not as Decoded) }
    case 'and':
      return { type: 'and', conds: ((message.and as Decoded).conds as Decoded[]).map(condFrom) }
    case 'or':
      return { type: 'or', conds: ((message.or as Decoded).conds as Decoded[]).map(condFrom) }
    case 'is_autocommit':
      return { type: 'is_autocommit' }
    default:
      return {}
  }
}

function batchFrom(message: Decoded | undefined): Decoded | undefined {
  if (!message) return undefined
  return {
    steps: (message.steps as Decoded[]).map((step) => ({
      ...(has(step, 'condition') ? { condition: condFrom(step.condition as Decoded) } : {}),
      stmt: stmtFrom(step.stmt as Decoded | undefined),
    })),
  }
}

function sqlRefFrom(message: Decoded): Decoded {
  return { ...(has(message, 'sql') ? { sql: message.sql } : {}), ...(has(message, 'sql_id') ? { sql_id: message.sql_id } : {}) }
}

function streamRequestFrom(message: Decoded): Decoded {
  const kind = oneof(message, 'request')
  const body = (kind ? message[kind] : undefined) as Decoded | undefined
  switch (kind) {
    case 'close':
    case 'get_autocommit':
      return { type: kind }
    case 'execute':
      return { type: kind, stmt: stmtFrom(body!.stmt as Decoded | undefined) }
    case 'batch':
      return { type: kind, batch: batchFrom(body!.batch as Decoded | undefined) }
    case 'sequence':
    case 'describe':
      return { type: kind, ...sqlRefFrom(body!) }
    case 'store_sql':
      return { type: kind, sql_id: body!.sql_id, sql: body!.sql }
    case 'close_sql':
      return { type: kind, sql_id: body!.sql_id }
    default:
      // No request set: refused by the schema (an unknown `type`).
      return {}
  }
}

/** `POST /v3-protobuf/pipeline`'s body, in the shape `pipelineBody` validates. */
export function decodePipelineBody(bytes: Uint8Array): Decoded {
  return decode(types.PipelineReqBody, bytes, 'PipelineReqBody', (message) => ({
    ...(has(message, 'baton') ? { baton: message.baton } : {}),
    requests: (message.requests as Decoded[]).map(streamRequestFrom),
  }))
}

/** `POST /v3-protobuf/cursor`'s body, in the shape `cursorBody` validates. */
export function decodeCursorBody(bytes: Uint8Array): Decoded {
  // A missing batch stays missing, for the schema to name.
  return decode(types.CursorReqBody, bytes, 'CursorReqBody', (message) => ({
    ...(has(message, 'baton') ? { baton: message.baton } : {}),
    ...(has(message, 'batch') ? { batch: batchFrom(message.batch as Decoded) } : {}),
  }))
}

/**
 * A `hrana3-protobuf` WebSocket message, in the JSON encoding's shape (`{ type: 'hello', jwt }`
 * or `{ type: 'request', request_id, request }`), for the same handling as a JSON message.
 */
export function decodeClientMsg(bytes: Uint8Array): Decoded {
  return decode(types.ClientMsg, bytes, 'ClientMsg', clientMsgFrom)
}

function clientMsgFrom(message: Decoded): Decoded {
  const kind = oneof(message, 'msg')
  if (kind === 'hello') {
    const hello = message.hello as Decoded
    return { type: 'hello', ...(has(hello, 'jwt') ? { jwt: hello.jwt } : {}) }
  }
  if (kind !== 'request') return {}
  const request = message.request as Decoded
  const requestKind = oneof(request, 'request')
  const body = (requestKind ? request[requestKind] : undefined) as Decoded | undefined
  const shaped: Decoded = { type: requestKind }
  if (body) {
    for (const field of ['stream_id', 'cursor_id', 'sql_id', 'sql', 'max_count'] as const) if (has(body, field)) shaped[field] = body[field]
    if (has(body, 'stmt')) shaped.stmt = stmtFrom(body.stmt as Decoded)
    if (has(body, 'batch')) shaped.batch = batchFrom(body.batch as Decoded)
    // A proto3 scalar that is zero is not on the wire: an id not there reads 0, as the peer meant.
    for (const field of ['stream_id', 'cursor_id', 'max_count'] as const) shaped[field] ??= body[field]
    if (requestKind === 'store_sql' || requestKind === 'close_sql') {
      shaped.sql_id ??= body.sql_id
      if (requestKind === 'store_sql') shaped.sql ??= body.sql
    }
  }
  return { type: 'request', request_id: request.request_id, request: shaped }
}

// ---- Responses: the JSON encoding's shape → protobuf ----

function valueTo(value: HranaValue): Decoded {
  switch (value.type) {
    case 'null':
      return { null: {} }
    case 'integer':
      return { integer: value.value }
    case 'float':
      return { float: value.value }
    case 'text':
      return { text: value.value }
    case 'blob':
      return { blob: Buffer.from(value.base64, 'base64') }
  }
}

function errorTo(error: HranaError): Decoded {
  return { message: error.message, code: error.code, ...(error.extended_code ? { extended_code: error.extended_code } : {}) }
}

function colsTo(cols: HranaStmtResult['cols']): Decoded[] {
  return cols.map((c) => ({ name: c.name, ...(c.decltype === null ? {} : { decltype: c.decltype }) }))
}

function stmtResultTo(result: HranaStmtResult): Decoded {
  return {
    cols: colsTo(result.cols),
    rows: result.rows.map((row) => ({ values: row.map(valueTo) })),
    affected_row_count: result.affected_row_count,
    ...(result.last_insert_rowid === null ? {} : { last_insert_rowid: result.last_insert_rowid }),
  }
}

function cursorEntryTo(entry: CursorEntry): Decoded {
  switch (entry.type) {
    case 'step_begin':
      return { step_begin: { step: entry.step, cols: colsTo(entry.cols) } }
    case 'row':
      return { row: { values: entry.row.map(valueTo) } }
    case 'step_end':
      return {
        step_end: {
          affected_row_count: entry.affected_row_count,
          ...(entry.last_insert_rowid === null ? {} : { last_insert_rowid: entry.last_insert_rowid }),
        },
      }
    case 'step_error':
      return { step_error: { step: entry.step, error: errorTo(entry.error) } }
    case 'error':
      return { error: errorTo(entry.error) }
  }
}

/** A response (`{ type, ... }`, as `runRequest` and the WebSocket build them) as its protobuf message's fields. */
function responseTo(response: Record<string, unknown>): Decoded {
  switch (response.type) {
    case 'execute':
      return { result: stmtResultTo(response.result as HranaStmtResult) }
    case 'batch': {
      const result = response.result as { step_results: Array<HranaStmtResult | null>; step_errors: Array<HranaError | null> }
      const stepResults: Record<number, Decoded> = {}
      const stepErrors: Record<number, Decoded> = {}
      result.step_results.forEach((r, i) => {
        if (r) stepResults[i] = stmtResultTo(r)
      })
      result.step_errors.forEach((e, i) => {
        if (e) stepErrors[i] = errorTo(e)
      })
      return { result: { step_results: stepResults, step_errors: stepErrors } }
    }
    case 'describe': {
      const result = response.result as { params: Array<{ name: string | null }>; cols: Array<{ name: string; decltype: string | null }>; is_explain: boolean; is_readonly: boolean }
      return {
        result: {
          params: result.params.map((p) => (p.name === null ? {} : { name: p.name })),
          cols: colsTo(result.cols),
          is_explain: result.is_explain,
          is_readonly: result.is_readonly,
        },
      }
    }
    case 'get_autocommit':
      return { is_autocommit: response.is_autocommit }
    case 'fetch_cursor':
      return { entries: (response.entries as CursorEntry[]).map(cursorEntryTo), done: response.done }
    default:
      return {}
  }
}

/** `POST /v3-protobuf/pipeline`'s answer. */
export function encodePipelineResponse(body: {
  baton: string | null
  results: Array<{ type: 'ok'; response: Record<string, unknown> & { type: string } } | { type: 'error'; error: HranaError }>
}): Uint8Array {
  return types.PipelineRespBody.encode({
    ...(body.baton === null ? {} : { baton: body.baton }),
    results: body.results.map((result) =>
      result.type === 'ok' ? { ok: { [result.response.type]: responseTo(result.response) } } : { error: errorTo(result.error) },
    ),
  }).finish()
}

/**
 * One item of a `/v3-protobuf/cursor` answer, length-delimited: first the head (`{ baton, base_url }`,
 * a `CursorRespBody`), then each `CursorEntry`.
 */
export function encodeCursorItem(item: CursorEntry | { baton: string | null; base_url: null }): Uint8Array {
  if ('baton' in item) return types.CursorRespBody.encodeDelimited(item.baton === null ? {} : { baton: item.baton }).finish()
  return types.CursorEntry.encodeDelimited(cursorEntryTo(item)).finish()
}

/** A WebSocket server message (`hello_ok`, `hello_error`, `response_ok`, `response_error`, in the JSON shape) as `hrana3-protobuf`. */
export function encodeServerMsg(message: Record<string, unknown>): Uint8Array {
  switch (message.type) {
    case 'hello_ok':
      return types.ServerMsg.encode({ hello_ok: {} }).finish()
    case 'hello_error':
      return types.ServerMsg.encode({ hello_error: { error: errorTo(message.error as HranaError) } }).finish()
    case 'response_ok': {
      const response = message.response as Record<string, unknown> & { type: string }
      return types.ServerMsg.encode({ response_ok: { request_id: message.request_id, [response.type]: responseTo(response) } }).finish()
    }
    default:
      return types.ServerMsg.encode({ response_error: { request_id: message.request_id, error: errorTo(message.error as HranaError) } }).finish()
  }
}
