/**
 * The answer shape of the original API (see docs/api.md), used by the
 * HTTP door and by `--json` on the CLI, so both print the same thing.
 *
 * @module
 */

import type { BackupError } from "./errors.ts";
import { isoTimestamp } from "../util/format.ts";

/** The fixed `message` for each HTTP status, as in the original project. */
export const MESSAGES: Record<number, string> = {
  200: "操作成功",
  202: "请求已接受",
  400: "请求参数错误",
  401: "未授权",
  403: "禁止访问",
  404: "资源未找到",
  405: "方法不允许",
  409: "资源冲突",
  413: "请求体过大",
  415: "不支持的媒体类型",
  500: "系统内部错误",
  503: "服务不可用",
};

/** The envelope every answer comes in. */
export interface Envelope {
  code: number;
  success: boolean;
  message: string;
  data: Record<string, unknown>;
}

/** A success: `response` is the sentence, `result` the operation's fields. */
export function successEnvelope(
  response: string,
  result: object,
  code = 200,
): Envelope {
  return {
    code,
    success: true,
    message: MESSAGES[code],
    data: { response, ...result },
  };
}

/** A failure, with `can_retry` only where the error says whether a retry helps. */
export function errorEnvelope(error: BackupError, now = new Date()): Envelope {
  const data: Record<string, unknown> = {
    response: error.message,
    error_type: error.type,
  };
  if (error.canRetry !== undefined) data.can_retry = error.canRetry;
  data.timestamp = isoTimestamp(now);
  return {
    code: error.status,
    success: false,
    message: MESSAGES[error.status] ?? MESSAGES[500],
    data,
  };
}
