import type { ProxyObserver } from '../pipeline/observer.js';

/** One observer that forwards every event to each of `observers` (logs, metrics). */
export function fanOut(...observers: ProxyObserver[]): ProxyObserver {
  return {
    connectionAccepted: (listener) => observers.forEach((observer) => observer.connectionAccepted(listener)),
    connectionClosed: (record) => observers.forEach((observer) => observer.connectionClosed(record)),
    backendConnected: (listener, backend, latencyMs) => observers.forEach((observer) => observer.backendConnected(listener, backend, latencyMs)),
    backendConnectFailed: (listener, backend, reason) => observers.forEach((observer) => observer.backendConnectFailed(listener, backend, reason)),
    backendHealthChanged: (change) => observers.forEach((observer) => observer.backendHealthChanged(change)),
    listenerError: (listener, error) => observers.forEach((observer) => observer.listenerError(listener, error)),
    connectionDropped: (listener, reason) => observers.forEach((observer) => observer.connectionDropped(listener, reason)),
    datagramDropped: (listener, reason) => observers.forEach((observer) => observer.datagramDropped(listener, reason)),
    panicRouting: (listener, route) => observers.forEach((observer) => observer.panicRouting(listener, route)),
    tlsHandshakeFailed: (listener, route, reason) => observers.forEach((observer) => observer.tlsHandshakeFailed(listener, route, reason)),
  };
}
