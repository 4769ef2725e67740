/**
 * gRPC status -> the google.rpc.Status JSON body of an HTTP error response. `details` come from the binary
 * `grpc-status-details-bin` trailer (a google.rpc.Status); each Any is rendered in proto3 JSON with "@type".
 * Nothing here throws: an undecodable trailer gives no details, an Any whose type is not in the registry (or whose
 * bytes do not decode) is kept as {"@type": url, "value": base64}, as grpc-gateway does.
 */
import { fromBinary, toJson, type DescMessage, type FileRegistry } from '@bufbuild/protobuf';
import type { ResponseOptions } from './response.ts';

interface AnyShape {
  typeUrl: string;
  value: Uint8Array;
}

export function statusBody(
  code: number,
  message: string,
  detailsBin: Buffer | undefined,
  registry: FileRegistry,
  options?: ResponseOptions,
): { code: number; message: string; details: unknown[] } {
  const details: unknown[] = [];
  const statusDesc = registry.getMessage('google.rpc.Status');
  const anyDesc = registry.getMessage('google.protobuf.Any');
  if (detailsBin !== undefined && detailsBin.length > 0 && statusDesc && anyDesc) {
    let anys: AnyShape[] = [];
    try {
      anys = (fromBinary(statusDesc, detailsBin) as unknown as { details: AnyShape[] }).details;
    } catch {
      anys = []; // a corrupt trailer must not turn an error response into a crash
    }
    for (const any of anys) details.push(detailJson(anyDesc, any, registry, options));
  }
  return { code, message, details };
}

function detailJson(anyDesc: DescMessage, any: AnyShape, registry: FileRegistry, options: ResponseOptions | undefined): unknown {
  try {
    const json = toJson(anyDesc, any as never, {
      registry,
      alwaysEmitImplicit: options?.emitUnpopulated ?? false,
      useProtoFieldName: options?.useProtoNames ?? false,
      enumAsInteger: options?.enumsAsInts ?? false,
    }) as Record<string, unknown>;
    // "@type" first, as Google APIs and grpc-gateway print it: readers look for the type before the fields.
    const { '@type': type, ...rest } = json;
    return { '@type': type, ...rest };
  } catch {
    return { '@type': any.typeUrl, value: Buffer.from(any.value.buffer, any.value.byteOffset, any.value.byteLength).toString('base64') };
  }
}
