// Where authstore's [[webhooks]] entry posts: sign-outs reach Convex within a
// second (README: "Sign-out that reaches Convex").
import { httpRouter } from "convex/server";
import { authstoreWebhook, WEBHOOK_PATH } from "@authstore/authjs/convex";

const http = httpRouter();
http.route({ path: WEBHOOK_PATH, method: "POST", handler: authstoreWebhook() });
export default http;
