/**
 * The one registry of WebSocket close codes the aggregator uses to refuse or end an
 * agent connection (4000-4999 is the application range of RFC 6455). The reason text
 * sent with each close says what was wrong; the code lets tools act on it.
 */
export const CloseCode = {
  /** Normal end after a goodbye, or aggregator shutdown. */
  normal: 1000,
  goingAway: 1001,
  /** Frame over the configured max payload (ws sends this itself). */
  tooBig: 1009,
  /** Not JSON, or not a valid message for this point of the conversation. */
  invalidMessage: 4000,
  /** Hello carried a protocol version this aggregator does not speak. */
  protocolVersion: 4001,
  /**
   * A node name the agent's credential does not cover (its node token's node, its client
   * certificate's names), in a hello or snapshot; or its node token revoked by a reload.
   * A missing or wrong credential is refused before the upgrade, with HTTP 401.
   */
  unauthorized: 4003,
  /** A message named a node other than the one this connection said hello as. */
  wrongNode: 4004,
  /** A newer connection claimed the same node name. */
  replaced: 4005,
  /** No hello within the allowed time. */
  helloTimeout: 4008,
  /**
   * The node name is held by a live connection from another Docker engine (two hosts with one
   * name). The agent retries slowly; the name is free again once the holder's connection is gone.
   */
  nodeConflict: 4009,
  /**
   * Too many connections are waiting to say hello; counts the upgrades refused with HTTP 503
   * before any WebSocket exists (RFC 6455's "Try Again Later").
   */
  tryAgainLater: 1013,
  /**
   * The aggregator cannot write its store (etcd unreachable): the agent moves to another
   * aggregator at once, since a node held by one that cannot write lapses everywhere.
   */
  storeUnavailable: 4010,
  /** The aggregator failed to apply a valid message (its own fault, logged there). */
  internalError: 1011,
} as const;
export type CloseCode = (typeof CloseCode)[keyof typeof CloseCode];

/** A close reason holds at most this many bytes of UTF-8 (RFC 6455); ws throws on a longer one. */
export const MAX_CLOSE_REASON_BYTES = 123;
