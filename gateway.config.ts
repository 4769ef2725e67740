// The example gateway: REST on :8080 and the gRPC passthrough on :9090, in front of the bundled library backend
// (examples/library-backend.ts, started by `npm start`). Paths are relative to this file.
import { defineConfig } from './src/config/define.ts';

export default defineConfig({
  http: { host: '127.0.0.1', port: 8080 },
  grpc: { host: '127.0.0.1', port: 9090 },
  protos: {
    includeDirs: ['protos'],
    files: ['protos/library/v1/library.proto'],
  },
  backends: [
    {
      name: 'library',
      services: ['library.v1.LibraryService'],
      endpoints: ['127.0.0.1:50151'],
    },
  ],
});
