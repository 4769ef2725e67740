/**
 * Public surface of the routing module: google.api.http path templates and the route matcher.
 * PURE: imports nothing from protobufjs, Fastify, gRPC or the rest of protogate.
 */
export { parseTemplate, PathTemplate } from './template.ts';
export type { TemplateSegment, TemplateVariable } from './template.ts';
export { RouterBuilder } from './router.ts';
export type { MatchResult, PathParam, RouteConflict, RouteInfo, Router } from './router.ts';
export { comparePrecedence, explainPrecedence } from './precedence.ts';
export type { Precedence, PrecedenceReason } from './precedence.ts';
export { PathDecodeError, TemplateSyntaxError } from './errors.ts';
