// Skein's public gRPC API from Node.js, with @grpc/grpc-js and @grpc/proto-loader on the
// repository's own .proto files: the contract outside C++.
//   node grpc_client.mjs ROUTER_ADDRESS PROTO_DIR
// Prints one JSON object with what each call returned; tests/node_grpc_test.cc checks it.
import grpc from '@grpc/grpc-js';
import protoLoader from '@grpc/proto-loader';

const [address, protoDir] = process.argv.slice(2);
const definition = protoLoader.loadSync('skein/v1/router.proto', {
  includeDirs: [protoDir], keepCase: true, longs: Number, enums: String, defaults: true,
});
const skein = grpc.loadPackageDefinition(definition).skein.v1;
const router = new skein.RouterService(address, grpc.credentials.createInsecure());
const meta = new grpc.Metadata();
meta.set('x-skein-owner', 'node');

const unary = (method, request, metadata = new grpc.Metadata()) =>
  new Promise((resolve) => router[method](request, metadata, (error, reply) =>
    resolve(error ? { code: error.code, message: error.details } : reply)));

// Streams a Generate to its end: token ids, the finish reason, the final position.
const generate = (request, metadata = new grpc.Metadata(), cancelAfter = 0) =>
  new Promise((resolve) => {
    const call = router.Generate(request, metadata);
    const out = { tokens: [], text: '', chunks: 0 };
    call.on('data', (chunk) => {
      out.chunks += 1;
      out.tokens.push(...chunk.token_ids);
      out.text += chunk.text.toString();
      if (chunk.finish_reason !== 'FINISH_REASON_UNSPECIFIED') {
        out.finish_reason = chunk.finish_reason;
        out.session_position = chunk.session_position;
      }
      if (cancelAfter > 0 && out.tokens.length >= cancelAfter) call.cancel();
    });
    call.on('error', (error) => resolve({ ...out, code: error.code }));
    call.on('end', () => resolve({ ...out, code: 0 }));
  });

const request = (ids, maxTokens, extra = {}) => ({
  prompt: { tokens: { ids } }, stop: { max_tokens: maxTokens, ignore_eos: true },
  return_token_ids: true, ...extra,
});

const out = {};
out.models = (await unary('ListModels', {})).models.map((m) => m.model.name);
out.generate = await generate(request([1, 2, 3, 4, 5], 8));
const complete = await unary('Complete', request([1, 2, 3, 4, 5], 8));
out.complete = { tokens: complete.token_ids, finish_reason: complete.finish_reason };

out.create = await unary('CreateSession', { session_id: 'from-node' }, meta);
out.turn1 = await generate(request([7, 8, 9], 4, { session_id: 'from-node' }), meta);
out.turn2 = await generate(request([10, 11], 4, { session_id: 'from-node' }), meta);
out.get = await unary('GetSession', { session_id: 'from-node' }, meta);
out.fork = await unary('ForkSession', { session_id: 'from-node', new_session_id: 'node-fork' }, meta);
out.other_owner = await unary('GetSession', { session_id: 'from-node' });
out.missing = await generate(request([1], 2, { session_id: 'no-such-session' }), meta);
out.deleted = await unary('DeleteSession', { session_id: 'node-fork' }, meta);
out.cancelled = await generate(request([1, 2, 3], 60000), new grpc.Metadata(), 5);
console.log(JSON.stringify(out));
router.close();
