const express = require("express");

const app = express();
const port = process.env.PORT || 5000;

app.get("/", (req, res) => {
  res.send(`Hello from Express on Node ${process.version}\n`);
});

app.listen(port, () => console.log(`listening on ${port}`));
