// Says hello, and counts how often this sandbox has been invoked (warm sandboxes keep state).

let invocations = 0;

export const handler = async (event, context) => {
  invocations += 1;
  const name = event && typeof event === "object" && event.name ? event.name : "world";
  console.log(`greeting ${name}`);
  return {
    message: `Hello, ${name}!`,
    runtime: "node",
    request_id: context.awsRequestId,
    invocations,
  };
};
